//! The audit trail: entries read by rollout, page or incident, and `insert_audit`, which every
//! change writes in its own transaction.

use super::{Result, Store, StoreError, from_timestamp, to_timestamp};
use app::domain::units::{Timestamp, Version};
use app::model::AuditEntry;
use sqlx::postgres::PgConnection;

/// An audit entry from a row of any query that selects its columns by name.
macro_rules! audit_entry {
    ($r:expr) => {
        AuditEntry { id: $r.id, at: to_timestamp($r.at), actor: $r.actor, action: $r.action, summary: $r.summary, reason: $r.reason }
    };
}

impl Store {
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
