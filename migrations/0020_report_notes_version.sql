-- The final report's notes are versioned per rollout, so that a save made from an old copy of
-- them is refused (409) instead of silently overwriting what someone else wrote meanwhile. A
-- save is the next version; the unique index makes two saves of the same version one winner.
ALTER TABLE report_notes ADD COLUMN version BIGINT;
UPDATE report_notes n SET version = v.version
FROM (SELECT id, row_number() OVER (PARTITION BY rollout_id ORDER BY id) AS version FROM report_notes) v
WHERE n.id = v.id;
ALTER TABLE report_notes ALTER COLUMN version SET NOT NULL;
CREATE UNIQUE INDEX report_notes_rollout_version ON report_notes (rollout_id, version);
