-- Publishable keys are public by design ("safe to expose online"): as the hosted Management
-- API does, listings show them in full, so their plaintext is kept. Secret keys stay hash-only:
-- the column can only ever hold a publishable key. Keys created before this migration keep a
-- NULL here and are listed masked, as before.
ALTER TABLE gateway.api_keys
    ADD COLUMN publishable_key text CHECK (publishable_key IS NULL OR type = 'publishable');
