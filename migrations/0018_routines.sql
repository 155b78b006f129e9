-- The plan's recurring checklists ("Each day", "Each evening", "Weekly monitoring") as dated
-- instances: a list's items for one day (or week) are made as that period begins in a live
-- rollout, in the stage of the time, and ticked on their day. `period` is NULL for a stage's
-- own checklist; routines never block leaving a stage.
ALTER TABLE checklist_items ADD COLUMN period TEXT;
-- What the person ticking found (any item), and who owns the item.
ALTER TABLE checklist_items ADD COLUMN note TEXT;
ALTER TABLE checklist_items ADD COLUMN owner TEXT;
ALTER TABLE checklist_items DROP CONSTRAINT checklist_items_rollout_id_stage_position_key;
CREATE UNIQUE INDEX checklist_items_stage_position ON checklist_items (rollout_id, stage, position) WHERE period IS NULL;
CREATE UNIQUE INDEX checklist_items_period_position ON checklist_items (rollout_id, period, position) WHERE period IS NOT NULL;
