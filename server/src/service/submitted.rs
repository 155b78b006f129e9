//! What CI and the team send in: a test suite's run (JSON, or read from a JUnit report) and
//! users' complaints, checked and stored.

use super::Rollouts;
use crate::store::{NewTestResult, TestResult};
use app::domain::units::{StageIndex, Timestamp};
use app::error::AppError;

impl Rollouts {
    /// Stores a CI run of one of the plan's test suites, for `stage` (default: the current one).
    pub async fn report_tests(&self, rollout_id: i64, report: TestReport, actor: &str) -> Result<TestResult, AppError> {
        let rollout = self.store.rollout(rollout_id).await?;
        let stage_index = report.stage.map_or(rollout.state.stage, StageIndex);
        let stage = rollout
            .plan
            .stage(stage_index)
            .ok_or_else(|| AppError::invalid("stage", format!("the plan has no stage {}", stage_index.0)))?;
        let suite = report.suite.trim();
        AppError::check_text("suite", suite, 100)?;
        for (field, count) in [("passed", report.passed), ("failed", report.failed), ("skipped", report.skipped)] {
            if count > MAX_TESTS_PER_RUN {
                return Err(AppError::invalid(field, format!("{count} tests in one run is more than {MAX_TESTS_PER_RUN}")));
            }
        }
        if !stage.test_suites.iter().any(|s| s.name == suite) {
            let names: Vec<String> = stage.test_suites.iter().map(|s| format!("“{}”", s.name)).collect();
            let expected = if names.is_empty() { "it requires none".to_string() } else { format!("it requires {}", names.join(", ")) };
            return Err(AppError::invalid("suite", format!("stage {} has no test suite “{suite}”: {expected}", stage_index.0)));
        }
        let url = report.url.as_deref().map(str::trim).filter(|u| !u.is_empty());
        if let Some(url) = url {
            AppError::check_text("url", url, 2_000)?;
        }
        if report.failures.len() > crate::junit::MAX_FAILURES_KEPT {
            return Err(AppError::invalid(
                "failures",
                format!("at most {} failed cases are kept per run", crate::junit::MAX_FAILURES_KEPT),
            ));
        }
        let failures = report.failures.into_iter().map(crate::junit::storable).collect::<Result<Vec<_>, _>>()?;
        let run = NewTestResult {
            stage: stage_index,
            suite: suite.to_string(),
            passed: report.passed,
            failed: report.failed,
            skipped: report.skipped,
            flaky: report.flaky.min(report.passed),
            duration_ms: report.duration_ms,
            format: report.format,
            failures,
            url: url.map(str::to_string),
        };
        Ok(self.store.record_test_result(rollout_id, run, actor, self.now()).await?)
    }

    /// Stores complaints users made (support tickets, feedback) for the guard's trend rule.
    pub async fn report_complaints(&self, rollout_id: i64, report: ComplaintReport, actor: &str) -> Result<i64, AppError> {
        self.store.rollout(rollout_id).await?;
        let now = self.now();
        let count = report.count.unwrap_or(1);
        if !(1..=10_000).contains(&count) {
            return Err(AppError::invalid("count", format!("{count} is not a number of complaints (1 to 10,000)")));
        }
        let at = report.at.map_or(now, Timestamp);
        if at.millis() > now.millis() + 300_000 {
            return Err(AppError::invalid("at", "more than 5 minutes in the future"));
        }
        let text = |t: Option<String>| t.map(|t| t.trim().to_string()).filter(|t| !t.is_empty());
        let (source, note) = (text(report.source), text(report.note));
        Ok(self.store.record_complaints(rollout_id, at, count, source.as_deref(), note.as_deref(), actor).await?)
    }
}

/// The most tests one CI run may report (a suite of a million is past any real one).
const MAX_TESTS_PER_RUN: u32 = 1_000_000;

/// A CI run of one test suite: `{"suite": "Phase 1", "passed": 16, "failed": 0}`, or read from
/// a JUnit XML report ([`TestReport::from_junit`]).
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestReport {
    pub suite: String,
    pub passed: u32,
    #[serde(default)]
    pub failed: u32,
    #[serde(default)]
    pub skipped: u32,
    /// Passed only on a retry (counted in `passed`).
    #[serde(default)]
    pub flaky: u32,
    pub duration_ms: Option<u64>,
    /// The cases that failed, with their messages.
    #[serde(default)]
    pub failures: Vec<crate::junit::FailedCase>,
    /// The stage the run belongs to; the current one when absent.
    pub stage: Option<u32>,
    /// A link to the CI run.
    pub url: Option<String>,
    #[serde(skip, default = "json_format")]
    pub format: &'static str,
}

fn json_format() -> &'static str {
    "json"
}

impl TestReport {
    /// A JUnit report's run, as the plan's suite `suite`.
    pub fn from_junit(run: crate::junit::Run, suite: String, stage: Option<u32>, url: Option<String>) -> TestReport {
        TestReport {
            suite,
            passed: run.passed,
            failed: run.failed,
            skipped: run.skipped,
            flaky: run.flaky,
            duration_ms: run.duration_ms,
            failures: run.failures,
            stage,
            url,
            format: "junit",
        }
    }
}

/// Complaints users made: `{"count": 2, "source": "support desk"}`.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComplaintReport {
    /// Default 1.
    pub count: Option<u32>,
    /// When they were made (ms since the epoch); default now.
    pub at: Option<i64>,
    pub source: Option<String>,
    pub note: Option<String>,
}
