-- Duplicates are found by the raw table itself: every daily partition has a unique index on
-- (rollout_id, event_id), and the ingest inserts with ON CONFLICT DO NOTHING. That is one
-- index insert per event where the separate event_ids table cost a heap row and two (see
-- docs/benchmarks.md). A replayed or re-imported event carries its own timestamp, so it lands
-- in the same partition and is found there; an id is remembered for as long as its day's
-- events are kept (retention drops them together).
--
-- Ids are opaque: compare them bytewise (C collation), as event_ids did.
ALTER TABLE events ALTER COLUMN event_id TYPE TEXT COLLATE "C";

DO $$
DECLARE
    partition_name TEXT;
BEGIN
    FOR partition_name IN
        SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'events'::regclass
    LOOP
        EXECUTE format('CREATE UNIQUE INDEX %I ON %I (rollout_id, event_id)', partition_name || '_ids', partition_name);
    END LOOP;
END
$$;

DROP TABLE event_ids;

-- The rollup tables lose their foreign keys for the same reason event_ids did (0009): the check
-- ran once per rollup row written, and only the ingest, which has just looked the rollout up,
-- writes them. Their text dimensions compare bytewise, which is all a key lookup needs.
ALTER TABLE event_rollups DROP CONSTRAINT event_rollups_rollout_id_fkey;
ALTER TABLE event_rollups_by_arm DROP CONSTRAINT event_rollups_by_arm_rollout_id_fkey;
ALTER TABLE event_rollups
    ALTER COLUMN variant TYPE TEXT COLLATE "C",
    ALTER COLUMN provider TYPE TEXT COLLATE "C",
    ALTER COLUMN file_type TYPE TEXT COLLATE "C";
ALTER TABLE event_rollups_by_arm ALTER COLUMN variant TYPE TEXT COLLATE "C";
