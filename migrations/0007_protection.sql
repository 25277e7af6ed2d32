-- Blocking abusive clients and the allow list of client networks (SPEC section 14,
-- docs/protection.md). Changes are announced on gateway_changes by the statements that make
-- them (gateway.rules.banstore), with what changed in the payload, so that no worker reads a
-- table per change.

-- Blocks: one row per blocked address (an IPv4 address or an IPv6 /64). A row whose ends_at
-- has passed is over; rows are deleted when lifted, and some time after they end.
CREATE TABLE gateway.network_bans (
    address    text COLLATE "C" PRIMARY KEY,
    started_at timestamptz NOT NULL,
    ends_at    timestamptz NOT NULL,
    reason     text NOT NULL,
    refusals   integer NOT NULL
);
CREATE INDEX network_bans_ends_at ON gateway.network_bans (ends_at);

-- Refused requests per address and bucket (a twentieth of protection.block_after's window,
-- span in milliseconds), added to by every worker that refused one, every limits.sync_ms.
-- Lost on a crash of Postgres, which costs nothing but a fresh count.
CREATE UNLOGGED TABLE gateway.refusal_counts (
    address text COLLATE "C" NOT NULL,
    span    integer NOT NULL,
    bucket  bigint NOT NULL,
    n       integer NOT NULL,
    expires double precision NOT NULL,  -- epoch seconds after which the bucket is of no use
    PRIMARY KEY (address, span, bucket)
);
CREATE INDEX refusal_counts_expires ON gateway.refusal_counts (expires);

-- The networks the public listener answers (the Management API's network restrictions). No
-- row: everyone (0.0.0.0/0 and ::/0).
CREATE TABLE gateway.network_restrictions (
    id         boolean PRIMARY KEY DEFAULT true CHECK (id),
    allowed_v4 text[] NOT NULL,
    allowed_v6 text[] NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
