//! All of Rampart's SQL, behind typed functions. Queries are checked at compile time against the
//! metadata committed in `.sqlx/`; the domain's decisions are applied here inside one
//! transaction together with the audit record that explains them.

use app::domain::plan::Plan;
use app::domain::readiness::StageEvidence;
use app::domain::rollout::{Effect, Refusal, Request, Rollout, Status, Transition};
use app::domain::units::{StageIndex, Timestamp, Version};
use app::model::{AuditEntry, ChecklistItem, FlagConfig};
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use sqlx::postgres::PgConnection;

mod accounts;
mod baselines;
/// Rows in binary `COPY` format (public for the ingest benchmark's baseline, which writes as the store does).
pub mod copy;
mod events;
mod guard;
mod idempotency;
mod operations;
mod reports;
mod rollups;
mod webhooks;
pub use accounts::{Credentials, Holder, LoginTally};
pub use baselines::Baseline;
pub use events::{Ingested, NewEvent, StageSpan};
pub use guard::GuardLease;
pub use idempotency::{Claim, Purged};
pub use operations::Outbox;
pub use reports::{NewTestResult, NotesSaved, ReportNotes, TestResult};
pub use rollups::{ArmKey, RollupFilter, RollupKey};
pub use webhooks::DueDelivery;

/// An audit entry from a row of any query that selects its columns by name.
macro_rules! audit_entry {
    ($r:expr) => {
        AuditEntry { id: $r.id, at: to_timestamp($r.at), actor: $r.actor, action: $r.action, summary: $r.summary, reason: $r.reason }
    };
}

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl StoreError {
    /// The SQLSTATE Postgres answered with, if it answered.
    pub fn sqlstate(&self) -> Option<String> {
        match self {
            StoreError::Db(sqlx::Error::Database(e)) => e.code().map(|c| c.into_owned()),
            _ => None,
        }
    }

    /// Whether the database could not serve the call at all — unreachable, shutting down or
    /// restarting, out of connections, disk or memory, or read-only — as opposed to refusing
    /// it or holding unreadable data. Nothing was written; the same call may succeed later.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Db(sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed) => true,
            StoreError::Db(sqlx::Error::Database(e)) => e.code().is_some_and(|code| unavailable_sqlstate(&code)),
            _ => false,
        }
    }
}

/// SQLSTATEs of a database that cannot serve now: class 08 (connection exception, but for a
/// protocol violation), class 53
/// (insufficient resources: disk full, out of memory, too many connections), 57P01–57P03
/// (shutting down, crash shutdown, cannot connect now) and 25006 (read-only transaction: a
/// standby, or `default_transaction_read_only`).
fn unavailable_sqlstate(code: &str) -> bool {
    // 08P01 is a protocol violation: a bug, not an outage.
    (code.starts_with("08") && code != "08P01") || code.starts_with("53") || matches!(code, "57P01" | "57P02" | "57P03" | "25006")
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// A rollout as stored, with the plan it follows.
#[derive(Clone, Debug)]
pub struct StoredRollout {
    pub id: i64,
    pub plan: Plan,
    pub state: Rollout,
}

/// A rollout that is not complete, and the version of its state.
#[derive(Clone, Debug)]
pub struct LiveRollout {
    pub id: i64,
    pub flag_key: String,
    pub version: Version,
}

/// The NOTIFY channel on which a rollout's flag key is announced when its served config changes.
const FLAG_CHANNEL: &str = "rampart_flags";

/// Postgres-backed storage. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: PgPool,
}

pub fn to_timestamp(t: DateTime<Utc>) -> Timestamp {
    Timestamp(t.timestamp_millis())
}

pub fn from_timestamp(t: Timestamp) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.millis()).unwrap_or_default()
}

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
    pub fn new(pool: PgPool) -> Store {
        Store { pool }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Whether the database answers (the health check).
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Stores `plan` (parsed from `source`) unless this exact file is stored already; returns its id.
    pub async fn save_plan(&self, plan: &Plan, source: &str) -> Result<i64> {
        let definition = serde_json::to_value(plan).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut tx = self.pool.begin().await?;
        let existing = sqlx::query_scalar!("SELECT id FROM plans WHERE key = $1 AND source_md5 = md5($2)", plan.key, source)
            .fetch_optional(&mut *tx)
            .await?;
        let id = match existing {
            Some(id) => id,
            None => {
                sqlx::query_scalar!(
                    "INSERT INTO plans (key, name, source, definition) VALUES ($1, $2, $3, $4) RETURNING id",
                    plan.key,
                    plan.name,
                    source,
                    definition
                )
                .fetch_one(&mut *tx)
                .await?
            }
        };
        tx.commit().await?;
        Ok(id)
    }

    /// Every live (not complete) rollout, or the one driving `flag`.
    pub async fn live_rollouts(&self, flag: Option<&str>) -> Result<Vec<LiveRollout>> {
        let rows = sqlx::query!(
            "SELECT id, flag_key, version FROM rollouts WHERE status <> 'complete' AND ($1::text IS NULL OR flag_key = $1) ORDER BY id",
            flag
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|r| LiveRollout { id: r.id, flag_key: r.flag_key, version: Version(r.version as u64) }).collect())
    }

    /// Creates a draft rollout of the stored plan `plan_id`, with every stage's checklist.
    pub async fn create_rollout(&self, plan_id: i64, plan: &Plan, actor: &str) -> Result<i64> {
        let mut tx = self.pool.begin().await?;
        let id = sqlx::query_scalar!(
            "INSERT INTO rollouts (plan_id, flag_key, stage, status) VALUES ($1, $2, 0, 'draft') RETURNING id",
            plan_id,
            plan.flag.key
        )
        .fetch_one(&mut *tx)
        .await?;
        let (mut stages, mut positions, mut sections, mut texts) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (stage_index, stage) in plan.stages.iter().enumerate() {
            let items = stage.checklist.iter().flat_map(|s| s.items.iter().map(move |i| (&s.title, i)));
            for (position, (section, text)) in items.enumerate() {
                stages.push(stage_index as i32);
                positions.push(position as i32);
                sections.push(section.clone());
                texts.push(text.clone());
            }
        }
        sqlx::query!(
            "INSERT INTO checklist_items (rollout_id, stage, position, section, text)
             SELECT $1, * FROM UNNEST($2::int[], $3::int[], $4::text[], $5::text[])",
            id,
            &stages,
            &positions,
            &sections,
            &texts
        )
        .execute(&mut *tx)
        .await?;
        let summary = format!("Created the rollout from plan “{}” ({} stages)", plan.name, plan.stages.len());
        insert_audit(&mut tx, Some(id), actor, "create", &summary, None, Some(Version(1)), serde_json::json!({}), None).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// The newest rollout's id.
    pub async fn newest_rollout(&self) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar!("SELECT id FROM rollouts ORDER BY id DESC LIMIT 1").fetch_optional(&self.pool).await?)
    }

    pub async fn rollout_ids(&self) -> Result<Vec<i64>> {
        Ok(sqlx::query_scalar!("SELECT id FROM rollouts ORDER BY id DESC").fetch_all(&self.pool).await?)
    }

    pub async fn rollout(&self, id: i64) -> Result<StoredRollout> {
        let mut conn = self.pool.acquire().await?;
        load_rollout(&mut conn, id, Lock::None).await
    }

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

    /// What the store knows about the rollout's current stage.
    pub async fn evidence(&self, rollout_id: i64, stage: StageIndex) -> Result<StageEvidence> {
        let mut conn = self.pool.acquire().await?;
        stage_evidence(&mut conn, rollout_id, stage).await
    }

    /// The newest `limit` audit entries of a rollout, newest first.
    pub async fn audit(&self, rollout_id: i64, limit: i64) -> Result<Vec<AuditEntry>> {
        self.audit_entries(rollout_id, None, limit).await
    }

    /// Every incident of a rollout (automatic and manual rollbacks, alerts, pauses), newest
    /// first; at most [`INCIDENTS_MAX`].
    pub async fn incidents(&self, rollout_id: i64) -> Result<Vec<AuditEntry>> {
        self.audit_entries(rollout_id, Some(&INCIDENTS), INCIDENTS_MAX).await
    }

    /// The newest `limit` audit entries of a rollout whose action is one of `actions` (any
    /// when `None`), newest first, without their evidence.
    async fn audit_entries(&self, rollout_id: i64, actions: Option<&[&str]>, limit: i64) -> Result<Vec<AuditEntry>> {
        let actions: Option<Vec<String>> = actions.map(|a| a.iter().map(|s| s.to_string()).collect());
        let rows = sqlx::query!(
            "SELECT id, at, actor, action, summary, reason FROM audit_log
             WHERE rollout_id = $1 AND ($2::text[] IS NULL OR action = ANY($2))
             ORDER BY id DESC LIMIT $3",
            rollout_id,
            actions.as_deref(),
            limit
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|r| audit_entry!(r)).collect())
    }

    /// A page of a rollout's audit trail, newest first, with each entry's version and evidence:
    /// the entries before id `query.before` (all when `None`) that match every filter given.
    /// An entry's stage is the one it was made in (the guard's `stage`, a command's `from`).
    pub async fn audit_page(&self, rollout_id: i64, query: &AuditQuery) -> Result<Vec<AuditRow>> {
        let rows = sqlx::query!(
            r#"SELECT id, at, actor, action, summary, reason, version,
                      COALESCE(evidence->>'stage', evidence->'from'->>'stage')::int AS stage, evidence
               FROM audit_log
               WHERE rollout_id = $1 AND ($2::bigint IS NULL OR id < $2)
                 AND ($3::text IS NULL OR actor = $3) AND ($4::text IS NULL OR action = $4)
                 AND ($5::int IS NULL OR COALESCE(evidence->>'stage', evidence->'from'->>'stage')::int = $5)
                 AND ($6::timestamptz IS NULL OR at >= $6) AND ($7::timestamptz IS NULL OR at < $7)
               ORDER BY id DESC LIMIT $8"#,
            rollout_id,
            query.before,
            query.actor,
            query.action,
            query.stage,
            query.from.map(from_timestamp),
            query.to.map(from_timestamp),
            query.limit
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| AuditRow { entry: audit_entry!(r), stage: r.stage, version: r.version, evidence: r.evidence })
            .collect())
    }

    /// One audit entry of a rollout with the evidence it stored.
    pub async fn audit_evidence(&self, rollout_id: i64, entry_id: i64) -> Result<(AuditEntry, serde_json::Value)> {
        let r = sqlx::query!(
            "SELECT id, at, actor, action, summary, reason, evidence FROM audit_log WHERE rollout_id = $1 AND id = $2",
            rollout_id,
            entry_id
        )
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound("audit entry"))?;
        let evidence = r.evidence;
        Ok((audit_entry!(r), evidence))
    }

    /// The served config of `key`'s flag, or of every flag, from the newest rollout of each.
    pub async fn flag_configs(&self, key: Option<&str>) -> Result<Vec<FlagConfig>> {
        let rows = sqlx::query!(
            r#"SELECT DISTINCT ON (r.flag_key)
                      r.flag_key, r.flag_enabled, r.flag_percentage, r.id, r.version, r.updated_at,
                      coalesce(p.definition->'flag'->>'group', r.flag_key) AS "group!",
                      p.definition->'flag'->>'env_prefix' AS "env_prefix!"
               FROM rollouts r JOIN plans p ON p.id = r.plan_id
               WHERE $1::text IS NULL OR r.flag_key = $1
               ORDER BY r.flag_key, r.id DESC"#,
            key
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| FlagConfig {
                key: r.flag_key,
                enabled: r.flag_enabled,
                percentage: r.flag_percentage.clamp(0, 100) as u8,
                group: r.group,
                env_prefix: r.env_prefix,
                config_version: format!("{}.{}", r.id, r.version),
                updated_at: to_timestamp(r.updated_at),
            })
            .collect())
    }

    /// A connection listening for flag changes (see migrations/0002_flag_notify.sql).
    /// A listener for flag changes and rollout changes (one connection for both).
    pub async fn listen_for_changes(&self) -> Result<sqlx::postgres::PgListener> {
        let mut listener = sqlx::postgres::PgListener::connect_with(&self.pool).await?;
        listener.listen_all([FLAG_CHANNEL, crate::live::CHANNEL]).await?;
        Ok(listener)
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

    /// Applies a command in one transaction: locks the rollout, lets `decide` judge it against
    /// the stored state and evidence, writes the new state, the served flag, the stage history
    /// and the audit entry, or nothing at all if `decide` refuses.
    pub async fn transition<F>(&self, rollout_id: i64, now: Timestamp, actor: &str, decide: F) -> Result<(StoredRollout, Transition)>
    where
        F: FnOnce(&StoredRollout, &StageEvidence) -> std::result::Result<(Transition, AuditRecord), Refusal>,
    {
        let mut tx = self.pool.begin().await?;
        let current = load_rollout(&mut tx, rollout_id, Lock::ForUpdate).await?;
        let evidence = stage_evidence(&mut tx, rollout_id, current.state.stage).await?;
        let (transition, record) = decide(&current, &evidence)?;
        let next = &transition.state;
        let served = app::domain::rollout::served_flag(&current.plan, next);
        let updated = sqlx::query!(
            "UPDATE rollouts SET stage = $3, status = $4, version = $5, stage_entered_at = $6,
                    flag_enabled = $7, flag_percentage = $8, request = $9, updated_at = now()
             WHERE id = $1 AND version = $2",
            rollout_id,
            current.state.version.0 as i64,
            next.stage.0 as i32,
            next.status.as_str(),
            next.version.0 as i64,
            next.stage_entered_at.map(from_timestamp),
            served.enabled,
            i16::from(served.percentage.get()),
            next.request.as_ref().map(serde_json::to_value).transpose().map_err(|e| StoreError::Corrupt(e.to_string()))?
        )
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() != 1 {
            // The row lock makes this unreachable unless someone bypassed the store.
            return Err(Refusal::Conflict { expected: current.state.version, current: next.version }.into());
        }
        let at = from_timestamp(now);
        for effect in &transition.effects {
            match effect {
                Effect::StageLeft { stage, how } => {
                    sqlx::query!(
                        "UPDATE stage_history SET left_at = $3, exit = $4
                         WHERE rollout_id = $1 AND stage = $2 AND left_at IS NULL",
                        rollout_id,
                        stage.0 as i32,
                        at,
                        *how
                    )
                    .execute(&mut *tx)
                    .await?;
                }
                Effect::StageEntered { stage } => {
                    sqlx::query!(
                        "INSERT INTO stage_history (rollout_id, stage, entered_at) VALUES ($1, $2, $3)",
                        rollout_id,
                        stage.0 as i32,
                        at
                    )
                    .execute(&mut *tx)
                    .await?;
                }
                Effect::FlagChanged { .. } => {} // written with the state above
            }
        }
        if let Some(event) = record.notice {
            let announcement = crate::webhooks::payload::Announcement {
                event,
                rollout_id,
                plan: &current.plan,
                state: next,
                summary: &record.summary,
                actor,
                reason: record.reason.as_deref(),
                evidence: &record.evidence,
                at: now,
            };
            webhooks::enqueue(&mut tx, &announcement).await?;
        }
        let AuditRecord { action, summary, reason, evidence, .. } = record;
        insert_audit(&mut tx, Some(rollout_id), actor, &action, &summary, reason.as_deref(), Some(next.version), evidence, Some(now))
            .await?;
        tx.commit().await?;
        Ok((current, transition))
    }
}

/// The most incidents a status page lists (a rollout with more has bigger problems than its
/// status page).
pub const INCIDENTS_MAX: i64 = 1_000;

/// The audit actions that are incidents: automatic and manual rollbacks, alerts, pauses.
pub const INCIDENTS: [&str; 4] = ["auto_roll_back", "roll_back", "alert", "pause"];

/// Which audit entries a page holds (see [`Store::audit_page`]).
#[derive(Clone, Debug, Default)]
pub struct AuditQuery {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub stage: Option<i32>,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    /// Entries with smaller ids than this one (the next page of one that ended there).
    pub before: Option<i64>,
    pub limit: i64,
}

/// An audit entry with the stage it was made in, the version it produced and its evidence.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AuditRow {
    #[serde(flatten)]
    pub entry: AuditEntry,
    pub stage: Option<i32>,
    pub version: Option<i64>,
    pub evidence: serde_json::Value,
}

/// The words and evidence an accepted command leaves in the audit log.
#[derive(Clone, Debug)]
pub struct AuditRecord {
    pub action: String,
    pub summary: String,
    pub reason: Option<String>,
    pub evidence: serde_json::Value,
    /// The webhook event this change announces, if any.
    pub notice: Option<app::domain::webhook::Event>,
}

/// Whether reading a rollout locks its row.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Lock {
    /// Until the surrounding transaction ends, so a transition sees the state it replaces.
    ForUpdate,
    /// A plain read: it never waits for a transition in progress, and works on a read-only
    /// database (a standby).
    None,
}

/// Reads a rollout with its plan.
async fn load_rollout(conn: &mut PgConnection, id: i64, lock: Lock) -> Result<StoredRollout> {
    let row = if lock == Lock::ForUpdate {
        sqlx::query!(
            "SELECT r.id, r.stage, r.status, r.version, r.stage_entered_at, r.request, p.definition
             FROM rollouts r JOIN plans p ON p.id = r.plan_id WHERE r.id = $1 FOR UPDATE OF r",
            id
        )
        .fetch_optional(&mut *conn)
        .await?
        .map(|r| (r.id, r.stage, r.status, r.version, r.stage_entered_at, r.request, r.definition))
    } else {
        sqlx::query!(
            "SELECT r.id, r.stage, r.status, r.version, r.stage_entered_at, r.request, p.definition
             FROM rollouts r JOIN plans p ON p.id = r.plan_id WHERE r.id = $1",
            id
        )
        .fetch_optional(&mut *conn)
        .await?
        .map(|r| (r.id, r.stage, r.status, r.version, r.stage_entered_at, r.request, r.definition))
    };
    let (id, stage, status, version, entered, request, definition) = row.ok_or(StoreError::NotFound("rollout"))?;
    let plan: Plan = serde_json::from_value(definition).map_err(|e| StoreError::Corrupt(format!("plan of rollout {id}: {e}")))?;
    let request: Option<Request> = request
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| StoreError::Corrupt(format!("approval request of rollout {id}: {e}")))?;
    let status = Status::parse(&status).ok_or_else(|| StoreError::Corrupt(format!("rollout {id} status `{status}`")))?;
    Ok(StoredRollout {
        id,
        plan,
        state: Rollout {
            stage: StageIndex(stage as u32),
            status,
            version: Version(version as u64),
            stage_entered_at: entered.map(to_timestamp),
            request,
        },
    })
}

async fn stage_evidence(conn: &mut PgConnection, rollout_id: i64, stage: StageIndex) -> Result<StageEvidence> {
    let counts = sqlx::query!(
        r#"SELECT count(*) FILTER (WHERE checked_at IS NOT NULL) AS "done!", count(*) AS "total!"
           FROM checklist_items WHERE rollout_id = $1 AND stage = $2 AND period IS NULL"#,
        rollout_id,
        stage.0 as i32
    )
    .fetch_one(&mut *conn)
    .await?;
    let baseline_recorded =
        sqlx::query_scalar!(r#"SELECT EXISTS (SELECT 1 FROM baselines WHERE rollout_id = $1) AS "exists!""#, rollout_id)
            .fetch_one(&mut *conn)
            .await?;
    let open_alerts =
        sqlx::query!("SELECT id, message FROM alerts WHERE rollout_id = $1 AND acknowledged_at IS NULL ORDER BY id", rollout_id)
            .fetch_all(&mut *conn)
            .await?
            .into_iter()
            .map(|r| (r.id, r.message))
            .collect();
    let suite_results = reports::suite_results(conn, rollout_id, stage).await?;
    Ok(StageEvidence {
        suite_results,
        checklist_done: counts.done as u32,
        checklist_total: counts.total as u32,
        baseline_recorded,
        open_alerts,
        // Gates need the metrics; the service judges them and adds them.
        gates: Vec::new(),
    })
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn insert_audit(
    conn: &mut PgConnection,
    rollout_id: Option<i64>,
    actor: &str,
    action: &str,
    summary: &str,
    reason: Option<&str>,
    version: Option<Version>,
    evidence: serde_json::Value,
    at: Option<Timestamp>,
) -> Result<()> {
    sqlx::query!(
        "INSERT INTO audit_log (rollout_id, actor, action, summary, reason, version, evidence, at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, COALESCE($8, now()))",
        rollout_id,
        actor,
        action,
        summary,
        reason,
        version.map(|v| v.0 as i64),
        evidence,
        at.map(from_timestamp)
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}
