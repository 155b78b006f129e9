//! The rollout plan: ordered stages with their flag setting, soak time, success criteria and
//! checklists, plus the guardrails that apply throughout. Plans are TOML files kept under
//! version control; [`Plan::from_toml`] parses and validates one, naming the line or field at
//! fault.

use super::units::{PctOfBaseline, Percentage, Span, StageIndex, Threshold};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A validated rollout plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
// The browser's copy skips the server's `metrics_source` (its URL and queries are none of the
// page's business, and its parser would only weigh on the WASM).
#[cfg_attr(feature = "ssr", serde(deny_unknown_fields))]
pub struct Plan {
    /// Stable identifier, lowercase letters, digits and dashes (`async-upload`).
    pub key: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub flag: FlagSpec,
    #[serde(default)]
    pub approvals: Approvals,
    pub guardrails: Guardrails,
    #[serde(default)]
    pub expected_improvements: Option<ExpectedImprovements>,
    #[serde(default)]
    pub matrix: Option<Matrix>,
    /// What the service sends today, for the power planner (`super::power`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic: Option<Traffic>,
    /// Checklists that recur each day or week of the rollout rather than once per stage.
    #[serde(default)]
    pub recurring_checklists: Vec<ChecklistSection>,
    /// Where the stage's evidence comes from: the event store when absent, else this Prometheus
    /// server (`super::source`).
    #[cfg(feature = "ssr")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_source: Option<super::source::PrometheusSource>,
    pub stages: Vec<Stage>,
}

/// The feature flag the plan drives.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlagSpec {
    /// The flag's key as services ask for it (`async_upload`).
    pub key: String,
    /// Prefix of the environment-style export: `<PREFIX>_ENABLED`, `<PREFIX>_ROLLOUT`.
    pub env_prefix: String,
    /// Bucketing group; defaults to the flag key (Unleash's `groupId`).
    #[serde(default)]
    pub group: Option<String>,
}

/// Who must approve an advance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approvals {
    pub required: u32,
    pub allow_self_approval: bool,
}

impl Default for Approvals {
    fn default() -> Self {
        Approvals { required: 1, allow_self_approval: false }
    }
}

/// Where an automatic rollback sends the flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RollbackTarget {
    /// The flag off for everyone (stage 0).
    Off,
    /// The stage before the current one.
    Previous,
}

impl fmt::Display for RollbackTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RollbackTarget::Off => "off",
            RollbackTarget::Previous => "the previous stage",
        })
    }
}

/// Conditions checked continuously while the flag is on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Guardrails {
    /// No longer used: the guard judges the stage's whole evidence with anytime-valid
    /// statistics (docs/statistics.md). Accepted so that older plans still load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Span>,
    /// Fewest treatment uploads in the stage before memory is judged (a mean has no sequence;
    /// rates need no minimum).
    pub min_sample: u32,
    /// How often the guard loop looks.
    pub interval: Span,
    pub rollback_target: RollbackTarget,
    pub auto_rollback: AutoRollback,
    pub manual_review: ManualReview,
}

/// Breaches that roll the flag back without waiting for a person.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoRollback {
    pub success_rate_below: Threshold,
    pub error_rate_above: Threshold,
    /// Any event marked critical rolls back.
    pub on_critical_error: bool,
    pub memory_above_baseline: PctOfBaseline,
}

/// Conditions that raise an alert and block advancing until an approver acknowledges it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManualReview {
    /// Success rate inside `[low, high)` for `success_band_for` needs review.
    pub success_band: [Threshold; 2],
    pub success_band_for: Span,
    pub latency_above_baseline: PctOfBaseline,
    pub latency_for: Span,
    pub on_complaint_rate_rising: bool,
    /// The arms' split of uploads far from the flag's percentage (an anytime-valid p-value
    /// below 0.001) raises an alert and fails the stage's sample-ratio row. On unless a plan
    /// turns it off, which it should only do when its services send a sample of the control
    /// arm's uploads rather than all of them.
    #[serde(default = "checked")]
    pub on_sample_ratio_mismatch: bool,
    /// How long after a stage begins its uploads are left out of the sample-ratio check: clients
    /// that cache the flag send at the stage before's split until they refresh, which is no
    /// fault of the assignment. At least the longest cache of the services' SDKs.
    #[serde(default = "settle")]
    pub sample_ratio_settle: Span,
}

fn checked() -> bool {
    true
}

fn settle() -> Span {
    Span::from_secs(5 * 60)
}

/// What the change is expected to achieve, compared at the end (sync vs async).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedImprovements {
    /// Memory reduction range in percent, e.g. `[80, 90]`.
    pub memory_reduction_pct: [f64; 2],
    /// Throughput multiplier range, e.g. `[5, 10]`.
    pub throughput_factor: [f64; 2],
    pub latency_reduction_pct: [f64; 2],
    pub timeout_reduction_pct: f64,
}

/// The end-to-end matrix: every cell must be seen working before the final stage completes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Matrix {
    pub file_types: Vec<String>,
    pub sizes_mb: Vec<u32>,
    pub providers: Vec<String>,
    /// Fewest treatment uploads a cell needs in the stage before it can pass.
    #[serde(default = "default_min_per_cell")]
    pub min_per_cell: u32,
}

fn default_min_per_cell() -> u32 {
    20
}

/// One step of the rollout.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
// As for the plan: the browser's copy skips the server's `metrics_source`.
#[cfg_attr(feature = "ssr", serde(deny_unknown_fields))]
pub struct Stage {
    pub name: String,
    #[serde(default)]
    pub summary: String,
    pub flag: StageFlag,
    /// Minimum time in the stage before it may be left.
    pub soak: Span,
    /// Metric gates; required whenever the flag is on.
    #[serde(default)]
    pub criteria: Option<Criteria>,
    /// The baseline (flag off) must be recorded before leaving this stage.
    #[serde(default)]
    pub requires_baseline: bool,
    /// Every cell of the plan's matrix must be healthy before leaving this stage.
    #[serde(default)]
    pub requires_matrix: bool,
    /// The expected improvements must be validated before leaving this stage.
    #[serde(default)]
    pub requires_performance_validated: bool,
    #[serde(default)]
    pub test_suites: Vec<TestSuite>,
    #[serde(default)]
    pub checklist: Vec<ChecklistSection>,
    /// This stage's own metric source, over the plan's (`"events"`, or a Prometheus table).
    #[cfg(feature = "ssr")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_source: Option<super::source::StageSource>,
}

/// The service's traffic and failure rates today (flag off): how long each stage's gates need
/// to reach a verdict if the change is as good as what it replaces.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Traffic {
    /// Uploads an hour, both arms together.
    pub uploads_per_hour: f64,
    /// Share of uploads that fail (errors and timeouts), in percent.
    pub failure_rate: Threshold,
    /// Share that end in an error, in percent; the failure rate when absent.
    #[serde(default)]
    pub error_rate: Option<Threshold>,
}

/// The flag as served during a stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageFlag {
    pub enabled: bool,
    pub percentage: Percentage,
}

impl StageFlag {
    pub const OFF: StageFlag = StageFlag { enabled: false, percentage: Percentage::ZERO };
}

impl fmt::Display for StageFlag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.enabled { write!(f, "on for {}", self.percentage) } else { f.write_str("off") }
    }
}

/// A stage's success criteria, judged on treatment events.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Criteria {
    pub success_rate_min: Threshold,
    pub error_rate_max: Threshold,
    /// p95 latency as a share of the baseline's.
    pub latency_max: PctOfBaseline,
    /// Fewest operations before the gate can pass.
    pub min_events: u32,
    /// Treatment failures (errors and timeouts) at most this many percentage points above the
    /// control arm's over the same stage ("no worse than control by more than 0.2 points"): a
    /// provider's outage that hits both arms does not fail it. Absent: not judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failures_vs_control_max: Option<f64>,
    /// The treatment's share of uploads slower than the stage's latency limit (`latency_max` of
    /// the reference p95) at most this many percentage points above control's ("no slower than
    /// control by more than 2 points of slow uploads"): a provider slowing down for both arms
    /// does not fail it. Absent: not judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_vs_control_max: Option<f64>,
}

/// A test suite whose result CI must report as passing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestSuite {
    pub name: String,
    pub tests: u32,
}

/// A titled group of tickable items (the seeds' "Day 1: Morning" lists), with what the seeds
/// call its success criteria: shown beside the items to whoever ticks them, never ticked
/// themselves (the measurable ones — success rates, uploads, tests — are the stage's gates).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChecklistSection {
    pub title: String,
    pub items: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub done_when: Vec<String>,
    /// How often a recurring list comes round: `"day"` or `"week"` (Monday to Sunday). Unset, a
    /// list whose title speaks of a week is weekly and any other daily. Recurring lists only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<Every>,
}

/// How often a recurring checklist comes round.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Every {
    Day,
    Week,
}

impl ChecklistSection {
    /// How often this list recurs: as the plan says, else by its title ("Weekly monitoring"
    /// weekly; "Each day", "Each evening" daily).
    pub fn every(&self) -> Every {
        self.every.unwrap_or(if self.title.to_lowercase().contains("week") { Every::Week } else { Every::Day })
    }
}

/// One problem found in a plan file: where, and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanError {
    /// 1-based line and column, when the problem sits at one place in the text.
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// The field's path, such as `stages[2].flag.percentage`, when known.
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}")?;
            if let Some(column) = self.column {
                write!(f, ", column {column}")?;
            }
            f.write_str(": ")?;
        }
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in a plan file, in file order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub struct PlanErrors(pub Vec<PlanError>);

impl fmt::Display for PlanErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl Plan {
    /// Parses and validates a plan file.
    pub fn from_toml(source: &str) -> Result<Plan, PlanErrors> {
        if source.len() > MAX_PLAN_BYTES {
            let message = format!(
                "the file is {} bytes; a plan is at most {} bytes",
                super::units::thousands(source.len() as u64),
                super::units::thousands(MAX_PLAN_BYTES as u64)
            );
            return Err(PlanErrors(vec![PlanError { line: None, column: None, field: None, message }]));
        }
        let plan: Plan = toml::from_str(source).map_err(|e| {
            let (line, column) = match e.span() {
                Some(span) => {
                    let (l, c) = line_and_column(source, span.start);
                    (Some(l), Some(c))
                }
                None => (None, None),
            };
            PlanErrors(vec![PlanError { line, column, field: None, message: e.message().trim().to_string() }])
        })?;
        let problems = plan.problems();
        if problems.is_empty() { Ok(plan) } else { Err(PlanErrors(problems)) }
    }

    pub fn stage(&self, index: StageIndex) -> Option<&Stage> {
        self.stages.get(index.get())
    }

    pub fn last_stage(&self) -> StageIndex {
        StageIndex(self.stages.len().saturating_sub(1) as u32)
    }

    /// The bucketing group: the configured one or the flag key.
    /// Where stage `index`'s evidence comes from: its own source, else the plan's; `None` is
    /// the event store.
    #[cfg(feature = "ssr")]
    pub fn source_for(&self, index: StageIndex) -> Option<&super::source::PrometheusSource> {
        use super::source::StageSource;
        match self.stage(index).and_then(|s| s.metrics_source.as_ref()) {
            Some(StageSource::Events) => None,
            Some(StageSource::Prometheus(source)) => Some(source),
            None => self.metrics_source.as_ref(),
        }
    }

    /// Every Prometheus source the plan names, the plan's first, each once.
    #[cfg(feature = "ssr")]
    pub fn sources(&self) -> Vec<&super::source::PrometheusSource> {
        let mut all: Vec<&super::source::PrometheusSource> = self.metrics_source.iter().collect();
        for stage in &self.stages {
            if let Some(super::source::StageSource::Prometheus(source)) = &stage.metrics_source
                && !all.contains(&&**source)
            {
                all.push(source);
            }
        }
        all
    }

    pub fn bucket_group(&self) -> &str {
        self.flag.group.as_deref().unwrap_or(&self.flag.key)
    }

    /// The rules that span fields; single values were already checked while parsing.
    fn problems(&self) -> Vec<PlanError> {
        let mut out = Vec::new();
        let mut bad = |field: String, message: String| out.push(PlanError { line: None, column: None, field: Some(field), message });

        if !is_slug(&self.key) {
            bad("key".into(), format!("`{}` must be lowercase letters, digits and dashes", self.key));
        }
        if self.name.trim().is_empty() {
            bad("name".into(), "must not be empty".into());
        }
        if !is_slug_underscored(&self.flag.key) {
            bad("flag.key".into(), format!("`{}` must be lowercase letters, digits and underscores", self.flag.key));
        }
        if self.flag.env_prefix.is_empty()
            || !self.flag.env_prefix.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        {
            bad("flag.env_prefix".into(), format!("`{}` must be uppercase letters, digits and underscores", self.flag.env_prefix));
        }
        if self.approvals.required == 0 || self.approvals.required > 10 {
            bad("approvals.required".into(), format!("{} approvers is not allowed (1 to 10)", self.approvals.required));
        }

        if let Some(t) = &self.traffic {
            if !(t.uploads_per_hour.is_finite() && t.uploads_per_hour > 0.0) {
                bad("traffic.uploads_per_hour".into(), format!("{} must be a positive number of uploads an hour", t.uploads_per_hour));
            }
            if t.error_rate.is_some_and(|e| e.get() > t.failure_rate.get()) {
                bad("traffic.error_rate".into(), "must not exceed traffic.failure_rate: errors are failures too".into());
            }
        }

        if let Some(m) = &self.matrix {
            for (field, empty) in
                [("file_types", m.file_types.is_empty()), ("sizes_mb", m.sizes_mb.is_empty()), ("providers", m.providers.is_empty())]
            {
                if empty {
                    bad(
                        format!("matrix.{field}"),
                        "must list at least one value: every cell of the matrix is a combination of them".into(),
                    );
                }
            }
            for (field, values) in [("file_types", &m.file_types), ("providers", &m.providers)] {
                let mut seen = std::collections::HashSet::new();
                if let Some(twice) = values.iter().find(|v| !seen.insert(v.as_str())) {
                    bad(format!("matrix.{field}"), format!("lists “{twice}” twice: each value once, or its cells would count twice"));
                }
            }
            if m.sizes_mb.windows(2).any(|w| w[0] >= w[1]) {
                bad("matrix.sizes_mb".into(), "must be in ascending order, each size once: each is the upper bound of a size class".into());
            }
            if m.min_per_cell == 0 {
                bad("matrix.min_per_cell".into(), "must be at least 1: a cell with no uploads has not been seen working".into());
            }
        }

        let g = &self.guardrails;
        if g.interval.secs() < 1 || g.interval.secs() > 300 {
            bad("guardrails.interval".into(), format!("{} must be between 1s and 5m: the guard must look often", g.interval));
        }
        if g.min_sample == 0 {
            bad("guardrails.min_sample".into(), "must be at least 1, or one upload could roll back on memory".into());
        }
        let [low, high] = g.manual_review.success_band;
        if low >= high {
            bad(
                "guardrails.manual_review.success_band".into(),
                format!("the band [{low}, {high}) is empty: the first bound must be lower"),
            );
        }
        if g.auto_rollback.success_rate_below > low {
            bad(
                "guardrails.auto_rollback.success_rate_below".into(),
                format!("{} is above the manual-review band's lower bound {low}", g.auto_rollback.success_rate_below),
            );
        }

        if self.stages.len() < 2 {
            bad("stages".into(), format!("a plan needs at least 2 stages, found {}", self.stages.len()));
        }
        if self.stages.len() > MAX_STAGES {
            bad("stages".into(), format!("a plan has at most {MAX_STAGES} stages, found {}", self.stages.len()));
        }
        let mut seen_names = std::collections::HashSet::new();
        let mut previous: Option<Percentage> = None;
        for (i, stage) in self.stages.iter().enumerate() {
            let at = |field: &str| format!("stages[{i}].{field}");
            if stage.name.trim().is_empty() {
                bad(at("name"), "must not be empty".into());
            } else if !seen_names.insert(stage.name.as_str()) {
                bad(at("name"), format!("`{}` is already the name of an earlier stage", stage.name));
            }
            let flag = stage.flag;
            if !flag.enabled && flag.percentage != Percentage::ZERO {
                bad(at("flag.percentage"), format!("is {} but the flag is off (enabled = false); use 0", flag.percentage));
            }
            let served = if flag.enabled { flag.percentage } else { Percentage::ZERO };
            if let Some(prev) = previous
                && served < prev
            {
                bad(at("flag.percentage"), format!("{served} is lower than the previous stage's {prev}; stages only widen the rollout"));
            }
            previous = Some(served);
            if flag.enabled && stage.criteria.is_none() {
                bad(at("criteria"), "is required when the flag is on in this stage".into());
            }
            if let Some(c) = &stage.criteria
                && c.min_events == 0
            {
                bad(at("criteria.min_events"), "must be at least 1".into());
            }
            let relative = stage.criteria.as_ref().map_or([None, None], |c| [c.failures_vs_control_max, c.latency_vs_control_max]);
            for (field, points) in ["failures_vs_control_max", "latency_vs_control_max"].into_iter().zip(relative) {
                let Some(points) = points else { continue };
                let field = at(&format!("criteria.{field}"));
                if !(points.is_finite() && (0.0..=100.0).contains(&points)) {
                    bad(field, format!("{points} is not a number of percentage points (0 to 100)"));
                } else if !(flag.enabled && flag.percentage.get() > 0 && flag.percentage.get() < 100) {
                    bad(field, format!("needs a control arm, and the flag is {} in this stage", flag));
                }
            }
            if stage.requires_matrix && self.matrix.is_none() {
                bad(at("requires_matrix"), "is set but the plan has no [matrix]".into());
            }
            if stage.requires_performance_validated && self.expected_improvements.is_none() {
                bad(at("requires_performance_validated"), "is set but the plan has no [expected_improvements]".into());
            }
            for (j, suite) in stage.test_suites.iter().enumerate() {
                if suite.name.trim().is_empty() {
                    bad(at(&format!("test_suites[{j}].name")), "must not be empty".into());
                }
                if suite.tests == 0 {
                    bad(at(&format!("test_suites[{j}].tests")), "must be at least 1".into());
                }
            }
            check_sections(&stage.checklist, &|f| at(&format!("checklist{f}")), &mut bad);
            for (k, section) in stage.checklist.iter().enumerate() {
                if section.every.is_some() {
                    bad(
                        at(&format!("checklist[{k}].every")),
                        "a stage's checklist is ticked once; `every` is for recurring_checklists".into(),
                    );
                }
            }
        }
        if let Some(last) = self.stages.last()
            && !(last.flag.enabled && last.flag.percentage == Percentage::FULL)
        {
            bad(format!("stages[{}].flag", self.stages.len() - 1), "the last stage must serve the flag on for 100%".into());
        }
        if let Some(first) = self.stages.first()
            && first.flag.enabled
        {
            bad("stages[0].flag.enabled".into(), "the first stage must have the flag off (it is where rollbacks land)".into());
        }
        check_sections(&self.recurring_checklists, &|f| format!("recurring_checklists{f}"), &mut bad);
        #[cfg(feature = "ssr")]
        {
            for (field, message) in self.metrics_source.iter().flat_map(|s| s.problems()) {
                bad(format!("metrics_source.{field}"), message);
            }
            for (i, stage) in self.stages.iter().enumerate() {
                if let Some(super::source::StageSource::Prometheus(source)) = &stage.metrics_source {
                    for (field, message) in source.problems() {
                        bad(format!("stages[{i}].metrics_source.{field}"), message);
                    }
                }
            }
        }
        out
    }
}

fn check_sections(sections: &[ChecklistSection], at: &dyn Fn(&str) -> String, bad: &mut impl FnMut(String, String)) {
    for (k, section) in sections.iter().enumerate() {
        if section.title.trim().is_empty() {
            bad(at(&format!("[{k}].title")), "must not be empty".into());
        }
        if section.items.is_empty() {
            bad(at(&format!("[{k}].items")), "a section needs at least one item".into());
        }
        for (n, item) in section.items.iter().enumerate() {
            if item.trim().is_empty() {
                bad(at(&format!("[{k}].items[{n}]")), "must not be empty".into());
            }
        }
    }
}

fn is_slug(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn is_slug_underscored(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn line_and_column(source: &str, offset: usize) -> (usize, usize) {
    let before = &source[..offset.min(source.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// The largest plan file, in bytes: sixteen times the shipped plan.
pub const MAX_PLAN_BYTES: usize = 256 * 1024;
/// The most stages a plan may have.
pub const MAX_STAGES: usize = 20;

/// The plan Rampart ships with: the seeds' async-upload rollout.
pub const DEFAULT_PLAN_TOML: &str = include_str!("../../../plans/async-upload.toml");

#[cfg(test)]
mod tests;
