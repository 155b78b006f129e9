//! What people and machines report besides upload events: CI test results and user complaints.

use super::{Result, Store, from_timestamp, insert_audit, to_timestamp};
use app::domain::readiness::SuiteResult;
use app::domain::units::{StageIndex, Timestamp};
use serde::Serialize;
use sqlx::postgres::PgConnection;

/// A stored test report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TestResult {
    pub id: i64,
    pub stage: u32,
    pub suite: String,
    pub passed: u32,
    pub failed: u32,
    pub url: Option<String>,
    pub reported_by: String,
    pub reported_at: Timestamp,
}

/// The newest report of each suite for `stage`.
pub(crate) async fn suite_results(conn: &mut PgConnection, rollout_id: i64, stage: StageIndex) -> Result<Vec<SuiteResult>> {
    let rows = sqlx::query!(
        "SELECT DISTINCT ON (suite) suite, passed, failed FROM test_results
         WHERE rollout_id = $1 AND stage = $2 ORDER BY suite, id DESC",
        rollout_id,
        stage.0 as i32
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().map(|r| SuiteResult { suite: r.suite, passed: r.passed as u32, failed: r.failed as u32 }).collect())
}

impl Store {
    /// Stores a suite's result for a stage and audits it.
    #[allow(clippy::too_many_arguments)]
    pub async fn record_test_result(
        &self,
        rollout_id: i64,
        stage: StageIndex,
        suite: &str,
        passed: u32,
        failed: u32,
        url: Option<&str>,
        actor: &str,
        now: Timestamp,
    ) -> Result<TestResult> {
        let mut tx = self.pool().begin().await?;
        let id = sqlx::query_scalar!(
            "INSERT INTO test_results (rollout_id, stage, suite, passed, failed, url, reported_by, reported_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
            rollout_id,
            stage.0 as i32,
            suite,
            passed as i32,
            failed as i32,
            url,
            actor,
            from_timestamp(now)
        )
        .fetch_one(&mut *tx)
        .await?;
        let summary = format!("{suite} tests for stage {}: {passed} passed, {failed} failed", stage.0);
        let evidence =
            serde_json::json!({ "test_result_id": id, "suite": suite, "stage": stage.0, "passed": passed, "failed": failed, "url": url });
        insert_audit(&mut tx, Some(rollout_id), actor, "test_result", &summary, None, None, evidence).await?;
        tx.commit().await?;
        Ok(TestResult {
            id,
            stage: stage.0,
            suite: suite.into(),
            passed,
            failed,
            url: url.map(str::to_string),
            reported_by: actor.into(),
            reported_at: now,
        })
    }

    /// Stores `count` complaints received at `at` and audits them.
    #[allow(clippy::too_many_arguments)]
    pub async fn record_complaints(
        &self,
        rollout_id: i64,
        at: Timestamp,
        count: u32,
        source: Option<&str>,
        note: Option<&str>,
        actor: &str,
    ) -> Result<i64> {
        let mut tx = self.pool().begin().await?;
        let id = sqlx::query_scalar!(
            "INSERT INTO complaints (rollout_id, at, count, source, note, reported_by) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            rollout_id,
            from_timestamp(at),
            count as i32,
            source,
            note,
            actor
        )
        .fetch_one(&mut *tx)
        .await?;
        let plural = if count == 1 { "" } else { "s" };
        let summary = match source {
            Some(source) => format!("{count} user complaint{plural} reported ({source})"),
            None => format!("{count} user complaint{plural} reported"),
        };
        insert_audit(
            &mut tx,
            Some(rollout_id),
            actor,
            "complaint",
            &summary,
            note,
            None,
            serde_json::json!({ "complaint_id": id, "count": count }),
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Complaints received in `[from, to)`.
    pub async fn complaint_count(&self, rollout_id: i64, from: Timestamp, to: Timestamp) -> Result<u64> {
        let total = sqlx::query_scalar!(
            r#"SELECT coalesce(sum(count), 0)::bigint AS "total!" FROM complaints WHERE rollout_id = $1 AND at >= $2 AND at < $3"#,
            rollout_id,
            from_timestamp(from),
            from_timestamp(to)
        )
        .fetch_one(self.pool())
        .await?;
        Ok(total as u64)
    }

    /// The newest reports of a rollout, newest first.
    pub async fn test_results(&self, rollout_id: i64, limit: i64) -> Result<Vec<TestResult>> {
        let rows = sqlx::query!(
            "SELECT id, stage, suite, passed, failed, url, reported_by, reported_at FROM test_results
             WHERE rollout_id = $1 ORDER BY id DESC LIMIT $2",
            rollout_id,
            limit
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| TestResult {
                id: r.id,
                stage: r.stage as u32,
                suite: r.suite,
                passed: r.passed as u32,
                failed: r.failed as u32,
                url: r.url,
                reported_by: r.reported_by,
                reported_at: to_timestamp(r.reported_at),
            })
            .collect())
    }
}
