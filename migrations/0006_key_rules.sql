-- What a key may do, and how much (SPEC section 14). NULL (or an empty list): no rule.
-- allowed_resources: PostgREST resources or * patterns (todos, rpc/search_*, storage.*, graphql);
-- allowed_methods: HTTP methods (GET allows HEAD); quota: '100000/month' or '5000/day'.
ALTER TABLE gateway.api_keys
    ADD COLUMN allowed_resources text[],
    ADD COLUMN allowed_methods text[],
    ADD COLUMN quota text;

-- Requests per key with a quota and UTC day, added to by every worker every
-- keys.quota_flush_seconds (one statement per worker, never a write per request). Logged, unlike
-- the rate-limit counts: a spent quota must survive a crash of Postgres. A period's use is the
-- sum of its days. `at` is when the row last changed: each worker reads the rows changed since
-- its last exchange. Rows of deleted keys go with them; rows older than 62 days are deleted.
CREATE TABLE gateway.quota_usage (
    key_id uuid NOT NULL,
    day    date NOT NULL,  -- in UTC
    n      bigint NOT NULL CHECK (n >= 0),
    at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (key_id, day)
);
CREATE INDEX quota_usage_at ON gateway.quota_usage (at);
