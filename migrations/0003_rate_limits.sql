-- Rate limits (SPEC section 10): per-key limits, and the counts workers and instances share.

-- {"per_key": "1000/m", "per_ip": "60/m"}; NULL or a missing entry: the configured default.
ALTER TABLE gateway.api_keys ADD COLUMN limits jsonb;

-- Requests per scope and bucket (a twentieth of the scope's window), added to by every worker
-- every limits.sync_ms. Lost on a crash of Postgres, which costs nothing but a fresh window.
CREATE UNLOGGED TABLE gateway.rate_counts (
    scope   text COLLATE "C" NOT NULL,
    bucket  bigint NOT NULL,
    n       bigint NOT NULL,
    expires double precision NOT NULL,  -- epoch seconds after which the bucket is of no use
    PRIMARY KEY (scope, bucket)
);
CREATE INDEX rate_counts_expires ON gateway.rate_counts (expires);

-- Announce every change made through the admin API or the CLI (they all move updated_at), not
-- only changes of the columns listed when the table was made; last_used_at stays silent.
DROP TRIGGER api_keys_notify ON gateway.api_keys;
CREATE TRIGGER api_keys_notify AFTER INSERT OR DELETE ON gateway.api_keys
    FOR EACH ROW EXECUTE FUNCTION gateway.notify_change();
CREATE TRIGGER api_keys_notify_update AFTER UPDATE ON gateway.api_keys
    FOR EACH ROW WHEN (OLD.updated_at IS DISTINCT FROM NEW.updated_at OR OLD.hash IS DISTINCT FROM NEW.hash)
    EXECUTE FUNCTION gateway.notify_change();
