//! Plans and rollouts: storing a plan, creating and reading rollouts, the served flag configs
//! and their NOTIFY channel, and `transition` — a command applied in one transaction.

use super::audit::{AuditRecord, insert_audit};
use super::{FLAG_CHANNEL, LiveRollout, Result, Store, StoreError, StoredRollout, from_timestamp, reports, to_timestamp, webhooks};
use app::domain::plan::Plan;
use app::domain::readiness::StageEvidence;
use app::domain::rollout::{Effect, Refusal, Request, Rollout, Status, Transition};
use app::domain::units::{StageIndex, Timestamp, Version};
use app::model::FlagConfig;
use sqlx::postgres::PgConnection;

impl Store {
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

    /// What the store knows about the rollout's current stage.
    pub async fn evidence(&self, rollout_id: i64, stage: StageIndex) -> Result<StageEvidence> {
        let mut conn = self.pool.acquire().await?;
        stage_evidence(&mut conn, rollout_id, stage).await
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

/// Whether reading a rollout locks its row.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Lock {
    /// Until the surrounding transaction ends, so a transition sees the state it replaces.
    ForUpdate,
    /// A plain read: it never waits for a transition in progress, and works on a read-only
    /// database (a standby).
    None,
}

/// Reads a rollout with its plan.
pub(super) async fn load_rollout(conn: &mut PgConnection, id: i64, lock: Lock) -> Result<StoredRollout> {
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
