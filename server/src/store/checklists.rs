//! Checklists: a rollout's items, ticking and noting one, and the recurring lists' items made
//! for their periods.

use super::audit::insert_audit;
use super::{Result, Store, StoreError, from_timestamp, to_timestamp};
use app::domain::units::{StageIndex, Timestamp};
use app::model::ChecklistItem;

/// A [`ChecklistItem`] from a row of `checklist_items` with every column the item shows (each
/// `query!` has a row type of its own, so a function could not take them all).
macro_rules! checklist_item {
    ($row:expr) => {{
        let r = $row;
        ChecklistItem {
            id: r.id,
            stage: StageIndex(r.stage as u32),
            section: r.section,
            text: r.text,
            checked_by: r.checked_by,
            checked_at: r.checked_at.map(to_timestamp),
            period: r.period,
            note: r.note,
            owner: r.owner,
        }
    }};
}

impl Store {
    /// Every checklist item of a rollout, in plan order.
    pub async fn checklist(&self, rollout_id: i64) -> Result<Vec<ChecklistItem>> {
        let rows = sqlx::query!(
            "SELECT id, stage, section, text, checked_by, checked_at, period, note, owner FROM checklist_items
             WHERE rollout_id = $1 ORDER BY stage, period NULLS FIRST, position",
            rollout_id
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|r| checklist_item!(r)).collect())
    }

    /// Ticks or unticks one item and records who did it.
    pub async fn set_checklist_item(
        &self,
        rollout_id: i64,
        item_id: i64,
        tick: &app::model::Tick,
        actor: &str,
        now: Timestamp,
    ) -> Result<ChecklistItem> {
        let checked = tick.checked;
        let mut tx = self.pool.begin().await?;
        let at = checked.then(|| from_timestamp(now));
        let who = checked.then_some(actor);
        let row = sqlx::query!(
            "UPDATE checklist_items SET checked_by = $3, checked_at = $4, note = COALESCE($5, note), owner = COALESCE($6, owner)
             WHERE rollout_id = $1 AND id = $2
             RETURNING id, stage, section, text, checked_by, checked_at, period, note, owner",
            rollout_id,
            item_id,
            who,
            at,
            tick.note.as_deref().map(str::trim),
            tick.owner.as_deref().map(str::trim)
        )
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound("checklist item"))?;
        let (action, verb) = if checked { ("tick", "Ticked") } else { ("untick", "Unticked") };
        let mut summary = format!("{verb} “{}” (stage {}, {})", row.text, row.stage, row.section);
        if let Some(note) = tick.note.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
            summary.push_str(&format!(": {note}"));
        }
        let evidence =
            serde_json::json!({ "item_id": item_id, "stage": row.stage, "period": row.period, "note": row.note, "owner": row.owner });
        insert_audit(&mut tx, Some(rollout_id), actor, action, &summary, None, None, evidence, Some(now)).await?;
        tx.commit().await?;
        Ok(checklist_item!(row))
    }

    /// Writes an item's finding and owner (blank clears either), leaving who ticked it and when
    /// as they are; the audit trail records who wrote what.
    pub async fn note_checklist_item(
        &self,
        rollout_id: i64,
        item_id: i64,
        note: &str,
        owner: &str,
        actor: &str,
        now: Timestamp,
    ) -> Result<ChecklistItem> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query!(
            "UPDATE checklist_items SET note = NULLIF(btrim($3), ''), owner = NULLIF(btrim($4), '')
             WHERE rollout_id = $1 AND id = $2
             RETURNING id, stage, section, text, checked_by, checked_at, period, note, owner",
            rollout_id,
            item_id,
            note,
            owner
        )
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound("checklist item"))?;
        let mut summary = format!("Noted on “{}” (stage {}, {})", row.text, row.stage, row.section);
        match (&row.note, &row.owner) {
            (None, None) => summary.push_str(": finding and owner cleared"),
            (note, owner) => {
                summary.push_str(&format!(": {}", note.as_deref().unwrap_or("no finding")));
                if let Some(owner) = owner {
                    summary.push_str(&format!(" (owner {owner})"));
                }
            }
        }
        let evidence =
            serde_json::json!({ "item_id": item_id, "stage": row.stage, "period": row.period, "note": row.note, "owner": row.owner });
        insert_audit(&mut tx, Some(rollout_id), actor, "note", &summary, None, None, evidence, Some(now)).await?;
        tx.commit().await?;
        Ok(checklist_item!(row))
    }

    /// Makes the routines `due` (the recurring lists' items of the periods holding now) that a
    /// rollout does not have yet, in `stage`; returns how many it made.
    pub async fn make_routines(&self, rollout_id: i64, stage: StageIndex, due: &[app::domain::routines::Due]) -> Result<u64> {
        let positions: Vec<i32> = due.iter().map(|d| d.position).collect();
        let column = |f: fn(&app::domain::routines::Due) -> &String| due.iter().map(|d| f(d).clone()).collect::<Vec<_>>();
        let made = sqlx::query!(
            "INSERT INTO checklist_items (rollout_id, stage, position, section, text, period)
             SELECT $1, $2, position, section, text, period FROM unnest($3::int[], $4::text[], $5::text[], $6::text[]) AS d (position, section, text, period)
             ON CONFLICT (rollout_id, period, position) WHERE period IS NOT NULL DO NOTHING",
            rollout_id,
            stage.0 as i32,
            &positions,
            &column(|d| &d.section),
            &column(|d| &d.text),
            &column(|d| &d.period),
        )
        .execute(&self.pool)
        .await?;
        Ok(made.rows_affected())
    }
}
