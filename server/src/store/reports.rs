//! What people and machines report besides upload events: CI test results and user complaints.

use super::{Result, Store, from_timestamp, insert_audit, to_timestamp};
use crate::junit::FailedCase;
use app::domain::readiness::SuiteResult;
use app::domain::units::{StageIndex, Timestamp};
use sqlx::postgres::PgConnection;

/// A stored test report (the control room's and the API's).
pub type TestResult = app::model::TestRun;

/// A run to store, as the service checked it.
#[derive(Clone, Debug)]
pub struct NewTestResult {
    pub stage: StageIndex,
    pub suite: String,
    pub passed: u32,
    pub failed: u32,
    pub skipped: u32,
    pub flaky: u32,
    pub duration_ms: Option<u64>,
    pub format: &'static str,
    pub failures: Vec<FailedCase>,
    pub url: Option<String>,
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
    /// Stores a suite's result for a stage, with its failed cases, and audits it.
    pub async fn record_test_result(&self, rollout_id: i64, run: NewTestResult, actor: &str, now: Timestamp) -> Result<TestResult> {
        let mut tx = self.pool().begin().await?;
        let id = sqlx::query_scalar!(
            "INSERT INTO test_results (rollout_id, stage, suite, passed, failed, skipped, flaky, duration_ms, format, url, reported_by, reported_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
            rollout_id,
            run.stage.0 as i32,
            run.suite,
            run.passed as i32,
            run.failed as i32,
            run.skipped as i32,
            run.flaky as i32,
            run.duration_ms.map(|ms| ms.min(i64::MAX as u64) as i64),
            run.format,
            run.url,
            actor,
            from_timestamp(now)
        )
        .fetch_one(&mut *tx)
        .await?;
        let column = |f: fn(&FailedCase) -> &String| run.failures.iter().map(|c| f(c).clone()).collect::<Vec<_>>();
        sqlx::query!(
            "INSERT INTO test_failures (result_id, position, classname, name, kind, message)
             SELECT $1, position - 1, classname, name, kind, message
             FROM unnest($2::text[], $3::text[], $4::text[], $5::text[]) WITH ORDINALITY AS f (classname, name, kind, message, position)",
            id,
            &column(|c| &c.classname),
            &column(|c| &c.name),
            &column(|c| &c.kind),
            &column(|c| &c.message),
        )
        .execute(&mut *tx)
        .await?;
        let (stage, suite, passed, failed) = (run.stage.0, &run.suite, run.passed, run.failed);
        let mut summary = format!("{suite} tests for stage {stage}: {passed} passed, {failed} failed");
        if run.skipped > 0 {
            summary.push_str(&format!(", {} skipped", run.skipped));
        }
        let evidence = serde_json::json!({ "test_result_id": id, "suite": suite, "stage": stage, "passed": passed, "failed": failed,
                                           "skipped": run.skipped, "flaky": run.flaky, "format": run.format, "url": run.url });
        insert_audit(&mut tx, Some(rollout_id), actor, "test_result", &summary, None, None, evidence, Some(now)).await?;
        tx.commit().await?;
        Ok(TestResult {
            id,
            stage,
            suite: run.suite,
            passed,
            failed,
            skipped: run.skipped,
            flaky: run.flaky,
            duration_ms: run.duration_ms,
            format: run.format.into(),
            failures: run.failures,
            url: run.url,
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
            None,
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

    /// The newest `limit` reports of a rollout, newest first; the newest `with_failures` of them
    /// with their failed cases (up to 200 each: a page lists few runs' failures).
    pub async fn test_results(&self, rollout_id: i64, limit: i64, with_failures: usize) -> Result<Vec<TestResult>> {
        let rows = sqlx::query!(
            "SELECT id, stage, suite, passed, failed, skipped, flaky, duration_ms, format, url, reported_by, reported_at FROM test_results
             WHERE rollout_id = $1 ORDER BY id DESC LIMIT $2",
            rollout_id,
            limit
        )
        .fetch_all(self.pool())
        .await?;
        let ids: Vec<i64> = rows.iter().take(with_failures).map(|r| r.id).collect();
        let mut failures: std::collections::HashMap<i64, Vec<FailedCase>> = std::collections::HashMap::new();
        for f in sqlx::query!(
            "SELECT result_id, classname, name, kind, message FROM test_failures WHERE result_id = ANY($1) ORDER BY result_id, position",
            &ids
        )
        .fetch_all(self.pool())
        .await?
        {
            failures.entry(f.result_id).or_default().push(FailedCase {
                classname: f.classname,
                name: f.name,
                kind: f.kind,
                message: f.message,
            });
        }
        Ok(rows
            .into_iter()
            .map(|r| TestResult {
                id: r.id,
                stage: r.stage as u32,
                suite: r.suite,
                passed: r.passed as u32,
                failed: r.failed as u32,
                skipped: r.skipped as u32,
                flaky: r.flaky as u32,
                duration_ms: r.duration_ms.map(|ms| ms as u64),
                format: r.format,
                failures: failures.remove(&r.id).unwrap_or_default(),
                url: r.url,
                reported_by: r.reported_by,
                reported_at: to_timestamp(r.reported_at),
            })
            .collect())
    }
}

/// What a team wrote into its final report, as last saved.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReportNotes {
    pub lessons: String,
    pub recommendations: String,
    /// How many times they were saved: a save names the version it was made from (0 before
    /// anyone has written them).
    pub version: u64,
    /// Who saved them last, and when; `None` before anyone has.
    pub written_by: Option<String>,
    pub written_at: Option<Timestamp>,
}

/// What a save of the notes did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotesSaved {
    /// Saved as the next version.
    Saved(ReportNotes),
    /// Someone saved since the version the save was made from: nothing was written; here is
    /// what is stored now.
    Stale(ReportNotes),
}

impl Store {
    /// The newest lessons and recommendations written for a rollout's final report.
    pub async fn report_notes(&self, rollout_id: i64) -> Result<ReportNotes> {
        let mut conn = self.pool().acquire().await?;
        notes_of(&mut conn, rollout_id).await
    }

    /// Saves new lessons and recommendations as the next version (earlier versions stay) and
    /// audits the save. With `from`, only if the stored version is still `from`; without, over
    /// whatever is stored.
    #[allow(clippy::too_many_arguments)]
    pub async fn write_report_notes(
        &self,
        rollout_id: i64,
        lessons: &str,
        recommendations: &str,
        from: Option<u64>,
        actor: &str,
        now: Timestamp,
    ) -> Result<NotesSaved> {
        loop {
            let mut tx = self.pool().begin().await?;
            // The next version, only while the stored one is the one named; two saves of the
            // same version meet at the unique index, and the later one fails there.
            let inserted = sqlx::query!(
                "INSERT INTO report_notes (rollout_id, version, lessons, recommendations, written_by, written_at)
                 SELECT $1, coalesce(max(version), 0) + 1, $2, $3, $4, $5 FROM report_notes WHERE rollout_id = $1
                 HAVING $6::bigint IS NULL OR coalesce(max(version), 0) = $6
                 RETURNING id, version",
                rollout_id,
                lessons,
                recommendations,
                actor,
                from_timestamp(now),
                from.map(|v| v.min(i64::MAX as u64) as i64)
            )
            .fetch_optional(&mut *tx)
            .await;
            let row = match inserted {
                Ok(Some(row)) => row,
                // The stored version moved on: what it is now, read in this transaction, which
                // holds the only connection this save takes.
                Ok(None) => return Ok(NotesSaved::Stale(notes_of(&mut tx, rollout_id).await?)),
                // Another save took this version first: a versioned save is stale, an
                // unversioned one goes on top of it.
                Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("23505") => {
                    tx.rollback().await?;
                    match from {
                        Some(_) => return Ok(NotesSaved::Stale(self.report_notes(rollout_id).await?)),
                        None => continue,
                    }
                }
                Err(e) => return Err(e.into()),
            };
            let evidence = serde_json::json!({ "report_notes_id": row.id, "version": row.version });
            let summary = "Wrote the final report's lessons learned and recommendations";
            insert_audit(&mut tx, Some(rollout_id), actor, "report_notes", summary, None, None, evidence, Some(now)).await?;
            tx.commit().await?;
            return Ok(NotesSaved::Saved(ReportNotes {
                lessons: lessons.into(),
                recommendations: recommendations.into(),
                version: row.version as u64,
                written_by: Some(actor.into()),
                written_at: Some(now),
            }));
        }
    }
}

/// The newest notes of a rollout, read on `conn` (a save's transaction reads what it lost to).
async fn notes_of(conn: &mut PgConnection, rollout_id: i64) -> Result<ReportNotes> {
    let row = sqlx::query!(
            "SELECT lessons, recommendations, version, written_by, written_at FROM report_notes WHERE rollout_id = $1 ORDER BY version DESC LIMIT 1",
            rollout_id
        )
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.map_or_else(ReportNotes::default, |r| ReportNotes {
        lessons: r.lessons,
        recommendations: r.recommendations,
        version: r.version as u64,
        written_by: Some(r.written_by),
        written_at: Some(to_timestamp(r.written_at)),
    }))
}
