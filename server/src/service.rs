//! The server's implementation of the UI's service traits: reads snapshots from the store and
//! runs commands through the domain's rules inside a store transaction. The REST API and the
//! server functions both call this, so they cannot disagree.

use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::store::{AuditRecord, NewTestResult, RollupFilter, Store, StoreError, StoredRollout, TestResult};
use crate::telemetry::{GateFigure, StageFigures};
use app::domain::access::{Permission, Principal};
use app::domain::gates::{self, Gate, Judged, Reference};
use app::domain::impact::{self, Impact};
use app::domain::matrix::MatrixView;
use app::domain::plan::{Plan, StageFlag};
use app::domain::readiness;
use app::domain::rollout::{Actor, Command, Context, Rollout, Status, Transition, apply, served_flag};
use app::domain::source::Evidence;
use app::domain::stats::Summary;
use app::domain::units::{StageIndex, Timestamp, Version};
use app::domain::webhook::Event;
use app::error::AppError;
use app::model::{AuditEntry, BaselinePreview, BaselineWindow, ChartPoint, ChartSeries, ChecklistItem, ControlRoom, Tick};
use app::services::RolloutService;

/// How far before now a baseline window captured from the control room ends.
const BASELINE_LAG_MS: i64 = 2 * 60_000;

/// How many audit entries the control room shows.
const AUDIT_SHOWN: i64 = 50;

#[derive(Clone)]
pub struct Rollouts {
    store: Store,
    metrics: Metrics,
    clock: Clock,
}

impl Rollouts {
    /// Writes a checklist item's finding and owner on behalf of `actor` (blank clears either).
    pub async fn note_checklist_item(
        &self,
        rollout_id: i64,
        item_id: i64,
        note: &str,
        owner: &str,
        actor: &str,
    ) -> Result<ChecklistItem, AppError> {
        AppError::check_text("note", note, 2_000)?;
        AppError::check_text("owner", owner, 100)?;
        Ok(self.store.note_checklist_item(rollout_id, item_id, note, owner, actor, (self.clock)()).await?)
    }

    pub fn new(store: Store, metrics: Metrics, clock: Clock) -> Rollouts {
        Rollouts { store, metrics, clock }
    }

    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The service's clock now.
    pub fn now(&self) -> Timestamp {
        (self.clock)()
    }

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

    /// The current stage's gates, judged on the treatment events since the stage began,
    /// against the frozen baseline (or the live control arm without one), that reference, the
    /// end-to-end matrix when the stage requires it and the impact (their gates among the gates
    /// when the stage requires them).
    pub async fn gates(&self, rollout: &StoredRollout, baseline: Option<&Summary>, now: Timestamp) -> Result<StageJudgement, AppError> {
        let state = &rollout.state;
        let Some(entered) = state.stage_entered_at else { return Ok(StageJudgement::default()) };
        if matches!(state.status, Status::Draft | Status::Complete) {
            return Ok(StageJudgement::default());
        }
        self.judge(rollout, state.stage, served_flag(&rollout.plan, state), baseline, Judged { from: entered, to: now }).await
    }

    /// The current stage's arms and gates as judged now, for `/metrics` (so that a team's own
    /// dashboards and alerts can show the rollout); none before a stage with criteria.
    pub async fn stage_figures(&self, rollout_id: i64) -> Result<Option<StageFigures>, AppError> {
        let now = (self.clock)();
        let rollout = self.store.rollout(rollout_id).await?;
        let baseline = self.store.latest_baseline(rollout_id).await?.map(|b| b.summary);
        let judgement = self.gates(&rollout, baseline.as_ref(), now).await?;
        if judgement.gates.is_empty() {
            return Ok(None);
        }
        let arm = |name, s: &app::domain::stats::Stats| (name, s.count(), s.error + s.timeout);
        let [treatment, control] = &judgement.arms;
        let gates = judgement.gates.iter().map(|g| GateFigure {
            criterion: serde_json::to_value(g.criterion).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default(),
            verdict: match g.verdict {
                gates::Verdict::Pass => "pass",
                gates::Verdict::Fail => "fail",
                gates::Verdict::Inconclusive => "inconclusive",
            },
            observed: g.observed,
            interval: g.interval,
            threshold: g.threshold,
        });
        Ok(Some(StageFigures {
            source: if rollout.plan.source_for(rollout.state.stage).is_some() { "prometheus" } else { "events" },
            source_ok: judgement.source_ok,
            arms: vec![arm("treatment", treatment), arm("control", control)],
            gates: gates.collect(),
        }))
    }

    /// Stage `index`'s gates, matrix and impact as judged on its events in `span` (the stage
    /// served `served` then): the current stage's live judgement, or a past stage's for a report.
    pub async fn judge(
        &self,
        rollout: &StoredRollout,
        index: StageIndex,
        served: StageFlag,
        baseline: Option<&Summary>,
        span: Judged,
    ) -> Result<StageJudgement, AppError> {
        let Some(stage) = rollout.plan.stage(index) else { return Ok(StageJudgement::default()) };
        let Some(criteria) = &stage.criteria else { return Ok(StageJudgement::default()) };
        let Judged { from: entered, to: now } = span;
        let until = Timestamp(now.millis() + 60_000);
        let evidence = self.metrics.stage_evidence(&rollout.plan, rollout.id, index.0 as i32, entered, until).await?;
        let rows = &evidence.rows;
        let (treatment, control) = (rows.treatment(), rows.control());
        let reference = Reference::choose(baseline, &control);
        let memory_limit = rollout.plan.guardrails.auto_rollback.memory_above_baseline.get();
        let mut judged = gates::evaluate(criteria, &treatment, &control, &reference, memory_limit, Judged { from: entered, to: now });
        // How long the uploads still needed take at the last hour's pace (of this stage): the
        // minutes of the same read from the one the hour began in.
        let hour_ago = Timestamp(now.millis() - 3_600_000).max(entered);
        let hour_minute = Timestamp(hour_ago.millis().div_euclid(60_000) * 60_000);
        let recent: u64 = rows.treatment.iter().filter(|(minute, _)| *minute >= hour_minute).map(|(_, stats)| stats.count()).sum();
        let hours = ((now.millis() - hour_ago.millis()) as f64 / 3_600_000.0).max(1.0 / 60.0);
        gates::pace(&mut judged, recent as f64 / hours);
        if let Some(check) = gates::sample_ratio(&rollout.plan.guardrails, served, rows, entered) {
            let units = self.units(rollout, index, check.from, until).await?;
            judged.push(check.with_units(Some(units)).gate(now));
        }
        let matrix = match (&rollout.plan.matrix, stage.requires_matrix) {
            (Some(matrix), true) => {
                let cells = self.metrics.matrix_rows(rollout.id, index.0 as i32, entered, until).await?;
                let view = MatrixView::judge(matrix, criteria.success_rate_min.get(), &cells);
                judged.push(view.gate(Judged { from: entered, to: now }));
                Some(view)
            }
            _ => None,
        };
        // The change's impact against the plan's expected improvements, on the same minutes.
        let impact =
            rollout.plan.expected_improvements.as_ref().filter(|_| served.enabled && served.percentage.get() > 0).map(|expected| {
                let minutes = (now.millis() - entered.millis()).max(60_000) as f64 / 60_000.0;
                let (against, source) = match baseline {
                    Some(b) => (b.clone(), "frozen baseline"),
                    None => (control.summary(minutes), "control arm"),
                };
                impact::measure(expected, &treatment, &against, source, u64::from(rollout.plan.guardrails.min_sample))
            });
        if stage.requires_performance_validated {
            judged.push(impact.as_ref().map_or_else(Impact::unmeasured_gate, Impact::gate));
        }
        vouch(&mut judged, &rollout.plan, index, &evidence);
        let source_ok = evidence.problem.is_none();
        Ok(StageJudgement {
            gates: judged,
            reference: Some(reference),
            matrix,
            impact,
            pulled: evidence.pulled,
            arms: [treatment, control],
            source_ok,
        })
    }

    /// The distinct units per arm (treatment, control) that stage `index`'s uploads named in
    /// `[from, to)`: the live count while the stage's stay is in force and `to` is now, else
    /// counted from the raw events (a past stay, for a report).
    async fn units(&self, rollout: &StoredRollout, index: StageIndex, from: Timestamp, to: Timestamp) -> Result<(u64, u64), StoreError> {
        let state = &rollout.state;
        let live = state.stage == index && state.stage_entered_at.is_some_and(|entered| entered <= from) && to >= self.now();
        let stage = index.0 as i32;
        if live {
            self.store.units_seen(rollout.id, stage, from).await
        } else {
            self.store.units_between(rollout.id, stage, from, to).await
        }
    }
}

/// The CI runs the control room lists (their trend per suite), and how many of the newest it
/// shows with their failed cases.
const TEST_RUNS_SHOWN: i64 = 20;
const TEST_RUNS_WITH_FAILURES: usize = 5;

/// The most tests one CI run may report (a suite of a million is past any real one).
const MAX_TESTS_PER_RUN: u32 = 1_000_000;

impl From<StoreError> for AppError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound(what) => AppError::not_found(what),
            StoreError::Refused(refusal) => refusal.into(),
            // Postgres's "data exception" class: a value a request carried that it cannot store
            // (a NUL in text, a number past its column). The caller's input, not a failure here;
            // the checks at the edges should have caught it first.
            StoreError::Db(sqlx::Error::Database(e)) if e.code().is_some_and(|c| c.starts_with("22")) => {
                tracing::warn!(error = %e, "a request carried a value Postgres cannot store");
                AppError::invalid("body", format!("a value cannot be stored: {}", e.message()))
            }
            error if error.is_unavailable() => {
                tracing::warn!(%error, "the database is unavailable");
                // Cut off at its commit, a change may or may not have been applied: events (by
                // id) and commands (by version) are safe to send again either way.
                match error.sqlstate().as_deref() {
                    // Out of disk: nothing comes back by itself, so say what it takes.
                    Some("53100") => AppError::Unavailable {
                        message: "the database is out of disk space: nothing was stored; send it again once an operator frees space".into(),
                        retry_after_secs: 30,
                    },
                    Some("25006") => AppError::Unavailable {
                        message: "the database takes no writes now (read-only, as a standby is); try again shortly".into(),
                        retry_after_secs: 5,
                    },
                    _ => AppError::Unavailable { message: "the database is unavailable; try again shortly".into(), retry_after_secs: 5 },
                }
            }
            StoreError::Corrupt(_) | StoreError::Db(_) => {
                tracing::error!(%error, "store failure");
                AppError::Internal
            }
        }
    }
}

/// What the current stage is judged on: its gates, the reference they compared with, the
/// end-to-end matrix when the stage requires it, and the impact against the plan's expected
/// improvements when it states them.
#[derive(Default)]
pub struct StageJudgement {
    pub gates: Vec<Gate>,
    pub reference: Option<Reference>,
    pub matrix: Option<MatrixView>,
    pub impact: Option<Impact>,
    /// The Prometheus queries the figures came from, with their times and counts (none when
    /// the event store holds them).
    pub pulled: Vec<app::domain::source::Pulled>,
    /// The treatment and control arms over the judged span, as the gates read them.
    pub arms: [app::domain::stats::Stats; 2],
    /// Whether the metric source vouched for those figures (no `Problem`).
    pub source_ok: bool,
}

#[async_trait::async_trait]
impl RolloutService for Rollouts {
    async fn control_room(&self, rollout_id: Option<i64>) -> Result<ControlRoom, AppError> {
        let id = match rollout_id {
            Some(id) => id,
            None => self.store.newest_rollout().await?.ok_or_else(|| AppError::not_found("rollout"))?,
        };
        let rollout = self.store.rollout(id).await?;
        let now = (self.clock)();
        let (baseline, baseline_window) = match self.store.latest_baseline(id).await? {
            Some(b) => {
                let window = BaselineWindow { captured_at: b.captured_at, captured_by: b.captured_by, from: b.from, to: b.to };
                (Some(b.summary), Some(window))
            }
            None => (None, None),
        };
        let mut evidence = self.store.evidence(id, rollout.state.stage).await?;
        let judgement = self.gates(&rollout, baseline.as_ref(), now).await?;
        evidence.gates = judgement.gates;
        let blockers = readiness::blockers(&rollout.plan, &rollout.state, &evidence, now);
        let StoredRollout { id, mut plan, state } = rollout;
        // Where the server reads the evidence is none of the page's business (nor a viewer's).
        plan.metrics_source = None;
        plan.stages.iter_mut().for_each(|s| s.metrics_source = None);
        // Routines of the periods holding now, and the period before's still open; earlier
        // ones stay in the reports.
        let shown = app::domain::routines::Shown::at(&plan, now);
        let (mut routines, checklist): (Vec<_>, Vec<_>) = self.store.checklist(id).await?.into_iter().partition(|i| i.period.is_some());
        routines.retain(|i| i.period.as_deref().is_some_and(|p| shown.keeps(p, i.checked_at.is_some())));
        Ok(ControlRoom {
            rollout_id: id,
            served: served_flag(&plan, &state),
            checklist,
            routines,
            audit: self.store.audit(id, AUDIT_SHOWN).await?,
            alerts: self.store.alerts(id).await?,
            test_runs: self.store.test_results(id, TEST_RUNS_SHOWN, TEST_RUNS_WITH_FAILURES).await?,
            matrix: judgement.matrix,
            impact: judgement.impact,
            baseline,
            baseline_window,
            baseline_look: None,
            gates: evidence.gates,
            blockers,
            plan,
            state,
            now,
        })
    }

    async fn set_checklist_item(&self, rollout_id: i64, item_id: i64, tick: Tick, actor: &str) -> Result<ChecklistItem, AppError> {
        let text =
            |field: &str, value: &Option<String>, max: usize| value.as_deref().map_or(Ok(()), |v| AppError::check_text(field, v, max));
        text("note", &tick.note, 2_000)?;
        text("owner", &tick.owner, 100)?;
        Ok(self.store.set_checklist_item(rollout_id, item_id, &tick, actor, (self.clock)()).await?)
    }

    async fn rollout_ids(&self) -> Result<Vec<i64>, AppError> {
        Ok(self.store.rollout_ids().await?)
    }

    async fn incidents(&self, rollout_id: i64) -> Result<Vec<AuditEntry>, AppError> {
        Ok(self.store.incidents(rollout_id).await?)
    }

    async fn chart_series(&self, rollout_id: i64, hours: u32) -> Result<ChartSeries, AppError> {
        let rollout = self.store.rollout(rollout_id).await?;
        let to = (self.clock)();
        let spans = self.store.stage_spans(rollout_id).await?;
        let from = match hours {
            // The whole rollout: from its first start (a draft's last day), as far back as a
            // window reaches.
            0 => spans.first().map_or(Timestamp(to.millis() - 24 * 3_600_000), |first| first.from.min(Timestamp(to.millis() - 3_600_000))),
            hours => Timestamp(to.millis() - i64::from(hours) * 3_600_000),
        };
        let from = from.max(Timestamp(to.millis() - crate::metrics::MAX_WINDOW.millis()));
        // A rollout that reads Prometheus in any stage is charted stage by stage from its sources.
        let window = if rollout.plan.sources().is_empty() {
            self.metrics.window(rollout_id, from, to, &RollupFilter::default()).await?
        } else {
            self.metrics.window_by_stage(&rollout.plan, rollout_id, &spans, from, to).await?.0
        };
        let mut total = 0;
        let points = window
            .series
            .into_iter()
            .map(|p| {
                total += p.treatment.count;
                ChartPoint { at: p.at, treatment: p.treatment, control: p.control, treatment_total: total }
            })
            .collect();
        // Stage entries and rollbacks, both read off the stage history: a rollback is an entry
        // into a lower stage than the one before it.
        let stage_name = |stage: i32| rollout.plan.stage(StageIndex(stage as u32)).map_or_else(String::new, |s| s.name.clone());
        let mut marks = Vec::new();
        let mut previous: Option<i32> = None;
        for span in spans {
            if span.from >= from {
                if previous.is_some_and(|p| span.stage < p) {
                    marks.push((span.from, "Rolled back".to_string()));
                }
                marks.push((span.from, format!("Stage {}: {}", span.stage, stage_name(span.stage))));
            }
            previous = Some(span.stage);
        }
        Ok(ChartSeries { from, to, step_minutes: window.step_minutes, points, marks })
    }

    async fn preview_baseline(&self, rollout_id: i64, hours: u32) -> Result<BaselinePreview, AppError> {
        // Whole minutes, as the rollups keep them, ending two minutes back: the minute under
        // way is not over, and batches of the last ones are still arriving (under live traffic
        // they would move the count between the look and the freeze).
        let to = Timestamp((self.clock)().millis().div_euclid(60_000) * 60_000 - BASELINE_LAG_MS);
        let from = Timestamp(to.millis() - i64::from(hours) * 3_600_000);
        let control = self.metrics.baseline_preview(rollout_id, from, to).await?;
        Ok(BaselinePreview { from, to, control })
    }

    async fn acknowledge_alert(&self, rollout_id: i64, alert_id: i64, note: &str, actor: &str) -> Result<(), AppError> {
        if note.trim().is_empty() {
            return Err(AppError::invalid("note", "say what was checked before acknowledging"));
        }
        AppError::check_text("note", note, 2_000)?;
        Ok(self.store.acknowledge_alert(rollout_id, alert_id, actor, note.trim(), (self.clock)()).await?)
    }

    async fn command(&self, rollout_id: i64, expected_version: u64, command: Command, by: &Principal) -> Result<Rollout, AppError> {
        let now = (self.clock)();
        let name = by.actor();
        let actor = Actor { name: &name, may_approve: by.may(Permission::Approve) };
        // Gates read the metrics outside the transaction; they describe the stage as the
        // caller saw it, and the transaction rejects the command if the stage moved since.
        let baseline = self.store.latest_baseline(rollout_id).await?.map(|b| b.summary);
        let StageJudgement { gates, reference, pulled, .. } =
            self.gates(&self.store.rollout(rollout_id).await?, baseline.as_ref(), now).await?;
        let (_, transition) = self
            .store
            .transition(rollout_id, now, &name, |current, evidence| {
                let evidence = readiness::StageEvidence { gates: gates.clone(), ..evidence.clone() };
                let blockers = readiness::blockers(&current.plan, &current.state, &evidence, now);
                let cx = Context { plan: &current.plan, now, blockers: &blockers, actor };
                let transition = apply(&current.state, Version(expected_version), &command, &cx)?;
                let record = audit_record(current, &command, &transition, &evidence.gates, reference.as_ref(), &pulled);
                Ok((transition, record))
            })
            .await?;
        tracing::info!(rollout_id, actor = name, command = command.name(), version = transition.state.version.0, "rollout command applied");
        Ok(transition.state)
    }
}

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

/// The audit entry for an accepted command: a sentence for people and the evidence for the
/// record — with the gates as judged (each rate's receipt inside) and the reference they were
/// judged against, so that `rampart explain` can recompute them.
fn audit_record(
    current: &StoredRollout,
    command: &Command,
    t: &Transition,
    gates: &[Gate],
    reference: Option<&Reference>,
    pulled: &[app::domain::source::Pulled],
) -> AuditRecord {
    let plan = &current.plan;
    let (from, to) = (&current.state, &t.state);
    let stage_name = |s: &Rollout| plan.stage(s.stage).map_or_else(String::new, |st| st.name.clone());
    let moved = || match to.status {
        Status::Complete => format!("completed the rollout at stage {} “{}”", to.stage.0, stage_name(to)),
        _ => format!("advanced to stage {} “{}”: flag {}", to.stage.0, stage_name(to), served_flag(plan, to)),
    };
    let mut summary = match (command, &to.request) {
        (Command::Start, _) => format!("Started the rollout: stage 0 “{}”", stage_name(to)),
        (Command::Advance { .. } | Command::Complete { .. }, Some(request)) => {
            let what = if request.complete {
                "completing the rollout".to_string()
            } else {
                let next = plan.stage(app::domain::units::StageIndex(to.stage.0 + 1));
                format!("advancing to stage {} “{}”", to.stage.0 + 1, next.map_or("", |s| s.name.as_str()))
            };
            format!("Asked for approval of {what} ({})", request.tally(plan))
        }
        (Command::Approve, Some(request)) => format!("Approved ({}); waiting for more", request.tally(plan)),
        (Command::Advance { .. } | Command::Complete { .. } | Command::Approve, None) => match &from.request {
            Some(request) => format!("Approved the request by {}: {}", request.by, moved()),
            None => app::format::capitalized(&moved()),
        },
        (Command::Decline { .. }, _) => {
            format!("Declined the request by {}", from.request.as_ref().map_or("?", |r| r.by.as_str()))
        }
        (Command::Pause { .. }, _) => format!("Paused at stage {} “{}”", to.stage.0, stage_name(to)),
        (Command::Resume, _) => format!("Resumed stage {} “{}”", to.stage.0, stage_name(to)),
        (Command::RollBack { .. }, _) => format!(
            "Rolled back from stage {} “{}” to stage {} “{}”: flag {}",
            from.stage.0,
            stage_name(from),
            to.stage.0,
            stage_name(to),
            served_flag(plan, to)
        ),
    };
    if !t.overridden.is_empty() {
        let list: Vec<String> = t.overridden.iter().map(ToString::to_string).collect();
        summary.push_str(&format!(" — overriding: {}", list.join("; ")));
    }
    let notice = match (command, &to.request) {
        (Command::Advance { .. } | Command::Complete { .. }, Some(_)) => Some(Event::ApprovalNeeded),
        (Command::Advance { .. } | Command::Complete { .. } | Command::Approve, None) if to.status == Status::Complete => {
            Some(Event::Completed)
        }
        (Command::Start | Command::Advance { .. } | Command::Complete { .. } | Command::Approve, None) => Some(Event::StageChanged),
        (Command::RollBack { .. }, _) => Some(Event::RolledBack),
        _ => None,
    };
    AuditRecord {
        notice,
        action: command.name().to_string(),
        summary,
        // An approval carries the reason of the request it approves.
        reason: match command {
            Command::Approve => from.request.as_ref().and_then(|r| r.override_reason.clone()),
            other => other.reason().map(str::to_string),
        },
        evidence: serde_json::json!({
            "from": from,
            "to": to,
            "flag": { "from": served_flag(plan, from), "to": served_flag(plan, to) },
            "overridden": t.overridden,
            "gates": gates,
            "reference": reference,
            "source": (!pulled.is_empty()).then_some(pulled),
        }),
    }
}

/// Makes the gates judged on `evidence` inconclusive where the stage's metric source cannot
/// vouch for them, saying why: all of them when its pull had a problem, the memory gate when
/// it reads no memory. (The live judgement and `rampart explain`'s recomputation alike.)
pub(crate) fn vouch(judged: &mut [Gate], plan: &Plan, index: StageIndex, evidence: &Evidence) {
    if let Some(problem) = &evidence.problem {
        gates::unvouched(judged.iter_mut(), &problem.to_string());
    } else if plan.source_for(index).is_some_and(|s| s.memory.is_none()) {
        let memory = judged.iter_mut().filter(|g| g.criterion == gates::Criterion::Memory);
        gates::unvouched(memory, "the rollout's metric source reads no memory (add `memory` to [metrics_source])");
    }
}
