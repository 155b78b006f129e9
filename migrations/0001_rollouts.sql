-- Plans, rollouts, their stage history and checklists, and the append-only audit log.

CREATE TABLE plans (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key         TEXT NOT NULL,
    name        TEXT NOT NULL,
    -- The plan file exactly as loaded, and its parsed form.
    source      TEXT NOT NULL,
    source_md5  TEXT GENERATED ALWAYS AS (md5(source)) STORED,
    definition  JSONB NOT NULL,
    loaded_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (key, source_md5)
);

CREATE TABLE rollouts (
    id                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    plan_id           BIGINT NOT NULL REFERENCES plans (id),
    flag_key          TEXT NOT NULL,
    stage             INT NOT NULL CHECK (stage >= 0),
    status            TEXT NOT NULL CHECK (status IN ('draft', 'running', 'paused', 'rolled_back', 'complete')),
    -- Optimistic concurrency: every transition increments it and names the one it acted on.
    version           BIGINT NOT NULL DEFAULT 1 CHECK (version >= 1),
    stage_entered_at  TIMESTAMPTZ,
    -- The flag as served, written in the same transaction as the state it follows from.
    flag_enabled      BOOLEAN NOT NULL DEFAULT false,
    flag_percentage   SMALLINT NOT NULL DEFAULT 0 CHECK (flag_percentage BETWEEN 0 AND 100),
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- One rollout at a time drives a flag.
CREATE UNIQUE INDEX rollouts_one_live_per_flag ON rollouts (flag_key) WHERE status <> 'complete';

CREATE TABLE stage_history (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rollout_id  BIGINT NOT NULL REFERENCES rollouts (id),
    stage       INT NOT NULL,
    entered_at  TIMESTAMPTZ NOT NULL,
    left_at     TIMESTAMPTZ,
    exit        TEXT CHECK (exit IN ('advanced', 'rolled_back', 'completed'))
);
CREATE INDEX stage_history_rollout ON stage_history (rollout_id, entered_at);

CREATE TABLE checklist_items (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rollout_id  BIGINT NOT NULL REFERENCES rollouts (id),
    stage       INT NOT NULL,
    position    INT NOT NULL,
    section     TEXT NOT NULL,
    text        TEXT NOT NULL,
    checked_by  TEXT,
    checked_at  TIMESTAMPTZ,
    UNIQUE (rollout_id, stage, position),
    CHECK ((checked_by IS NULL) = (checked_at IS NULL))
);

CREATE TABLE audit_log (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rollout_id  BIGINT REFERENCES rollouts (id),
    at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    summary     TEXT NOT NULL,
    reason      TEXT,
    -- The rollout version the action produced, and what the rules saw (blockers overridden, …).
    version     BIGINT,
    evidence    JSONB NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_rollout ON audit_log (rollout_id, id DESC);

-- The audit trail is evidence: rows are added, never changed or removed.
CREATE FUNCTION audit_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % is not allowed', TG_OP;
END;
$$;
CREATE TRIGGER audit_log_no_update_or_delete BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_is_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_is_append_only();
