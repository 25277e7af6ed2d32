-- Requests per key and hour, for the API Keys page's usage chart (SPEC section 13). Each
-- worker counts in memory and adds its counts in the batched flush that writes last_used_at
-- (one statement per flush, never a write per request). Hours older than 8 days are pruned by
-- the same statement; a deleted key's hours go with it.
CREATE TABLE gateway.key_usage (
    key_id text COLLATE "C" NOT NULL,  -- the key's uuid, or 'anon' / 'service_role'
    hour   timestamptz NOT NULL,        -- start of the hour
    n      bigint NOT NULL CHECK (n >= 0),
    PRIMARY KEY (key_id, hour)
);
CREATE INDEX key_usage_hour ON gateway.key_usage (hour);
