-- What a team writes into its final report: the lessons it learned and its recommendations.
-- Every save is a row of its own and the newest is shown, so nothing once written is lost.
CREATE TABLE report_notes (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rollout_id       BIGINT NOT NULL REFERENCES rollouts (id),
    lessons          TEXT NOT NULL,
    recommendations  TEXT NOT NULL,
    written_by       TEXT NOT NULL,
    written_at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX report_notes_rollout ON report_notes (rollout_id, id DESC);
