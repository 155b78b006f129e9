-- Idempotency-Key for rollout commands: a retried request gets the first answer instead of
-- acting again.

CREATE TABLE idempotency_keys (
    key           TEXT PRIMARY KEY,
    request_hash  TEXT NOT NULL,
    -- NULL while the first request is still being answered.
    status        SMALLINT,
    response      JSONB,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
