-- The gateway's own schema: never exposed through the Data API.
CREATE SCHEMA IF NOT EXISTS gateway;

CREATE TABLE gateway.api_keys (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    type                text NOT NULL CHECK (type IN ('publishable', 'secret')),
    name                text NOT NULL CHECK (name ~ '^[a-z_][a-z0-9_]+$' AND length(name) BETWEEN 4 AND 64),
    description         text,
    prefix              text NOT NULL,
    hash                text NOT NULL UNIQUE CHECK (length(hash) = 43),
    secret_jwt_template jsonb,
    inserted_at         timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    last_used_at        timestamptz
);

-- Small key/value state shared by every instance: the legacy switch, the admin token hash,
-- legacy keys' last use.
CREATE TABLE gateway.settings (
    key        text PRIMARY KEY,
    value      jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Who changed what, when. Never key material: ids, names, display prefixes only.
CREATE TABLE gateway.audit_log (
    id      bigserial PRIMARY KEY,
    at      timestamptz NOT NULL DEFAULT now(),
    actor   text NOT NULL,
    action  text NOT NULL,
    target  text,
    details jsonb NOT NULL DEFAULT '{}'::jsonb
);

-- Every change to keys or settings is announced so that other instances update their
-- in-memory tables (LISTEN gateway_changes). The payload carries ids and hashes, never keys.
CREATE FUNCTION gateway.notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'api_keys' THEN
        PERFORM pg_notify('gateway_changes', json_build_object(
            'table', 'api_keys', 'op', TG_OP,
            'id', COALESCE(NEW.id, OLD.id),
            'hash', COALESCE(NEW.hash, OLD.hash))::text);
    ELSE
        PERFORM pg_notify('gateway_changes', json_build_object(
            'table', 'settings', 'op', TG_OP,
            'key', COALESCE(NEW.key, OLD.key))::text);
    END IF;
    RETURN NULL;
END $$;

-- last_used_at is batched by the gateway; such updates are not worth a notification.
CREATE TRIGGER api_keys_notify AFTER INSERT OR DELETE OR UPDATE OF type, name, description, secret_jwt_template, hash
    ON gateway.api_keys FOR EACH ROW EXECUTE FUNCTION gateway.notify_change();
CREATE TRIGGER settings_notify AFTER INSERT OR UPDATE OR DELETE
    ON gateway.settings FOR EACH ROW EXECUTE FUNCTION gateway.notify_change();
