-- The oldest Rampart that may run on this schema, named by the newest migration it knows.
-- A release's migrations are additive (new tables; new columns nullable or with a default), so
-- during a rolling upgrade the previous release's replicas run — and restart — on the schema the
-- new release migrated, and find a migration they do not know. They start when this floor is
-- at or below what they know, and refuse, naming the release they need, when it is above. A
-- migration the previous release cannot run beside raises it:
--     UPDATE schema_floor SET oldest_binary = <this migration's version>;
-- and its release notes say to stop every older replica first.
CREATE TABLE schema_floor (
    one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
    oldest_binary BIGINT NOT NULL
);
INSERT INTO schema_floor (oldest_binary) VALUES (21);
