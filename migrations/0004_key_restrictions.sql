-- Key restrictions and expiry (SPEC section 11). NULL (or an empty list): no restriction.
ALTER TABLE gateway.api_keys
    ADD COLUMN expires_at timestamptz,
    ADD COLUMN allowed_origins text[],
    ADD COLUMN allowed_ips text[],
    ADD COLUMN allowed_services text[];
