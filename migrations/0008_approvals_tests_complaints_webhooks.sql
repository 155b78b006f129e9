-- Approvals: an advance somebody asked for waits in the rollout row (JSON of the domain's
-- `Request`), changed only by versioned transitions like the rest of the state.
ALTER TABLE rollouts DROP CONSTRAINT rollouts_status_check;
ALTER TABLE rollouts ADD CONSTRAINT rollouts_status_check
    CHECK (status IN ('draft', 'running', 'awaiting_approval', 'paused', 'rolled_back', 'complete'));
ALTER TABLE rollouts ADD COLUMN request JSONB;
ALTER TABLE rollouts ADD CONSTRAINT rollouts_request_while_awaiting
    CHECK ((status = 'awaiting_approval') = (request IS NOT NULL));

-- CI test results, per stage: the newest report of a suite is the one that counts.
CREATE TABLE test_results (
    id          BIGSERIAL PRIMARY KEY,
    rollout_id  BIGINT NOT NULL REFERENCES rollouts (id),
    stage       INT NOT NULL,
    suite       TEXT NOT NULL,
    passed      INT NOT NULL CHECK (passed >= 0),
    failed      INT NOT NULL CHECK (failed >= 0),
    url         TEXT,
    reported_by TEXT NOT NULL,
    reported_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX test_results_by_stage ON test_results (rollout_id, stage, suite, id DESC);

-- User complaints (support tickets, feedback), counted per report.
CREATE TABLE complaints (
    id          BIGSERIAL PRIMARY KEY,
    rollout_id  BIGINT NOT NULL REFERENCES rollouts (id),
    at          TIMESTAMPTZ NOT NULL,
    count       INT NOT NULL CHECK (count > 0),
    source      TEXT,
    note        TEXT,
    reported_by TEXT NOT NULL
);
CREATE INDEX complaints_by_time ON complaints (rollout_id, at);

-- Outgoing webhooks. Deliveries are written in the transaction of the change they announce
-- (an outbox), so a change is never announced unless it committed and never lost if it did.
CREATE TABLE webhooks (
    id          BIGSERIAL PRIMARY KEY,
    url         TEXT NOT NULL,
    -- HMAC-SHA256 key; shown once when created, needed in clear text to sign.
    secret      TEXT NOT NULL,
    -- Event kinds sent; empty means every kind.
    events      TEXT[] NOT NULL DEFAULT '{}',
    description TEXT NOT NULL DEFAULT '',
    created_by  TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    disabled_at TIMESTAMPTZ
);

CREATE TABLE webhook_deliveries (
    id              BIGSERIAL PRIMARY KEY,
    webhook_id      BIGINT NOT NULL REFERENCES webhooks (id),
    event           TEXT NOT NULL,
    payload         JSONB NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    attempts        INT NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ,
    last_status     INT,
    last_error      TEXT,
    delivered_at    TIMESTAMPTZ,
    -- Gave up after the last retry.
    failed_at       TIMESTAMPTZ
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE delivered_at IS NULL AND failed_at IS NULL;
CREATE INDEX webhook_deliveries_by_hook ON webhook_deliveries (webhook_id, id DESC);
