//! The rollout plan: ordered stages with their flag setting, soak time, success criteria and
//! checklists, plus the guardrails that apply throughout. Plans are TOML files kept under
//! version control; [`Plan::from_toml`] parses and validates one, naming the line or field at
//! fault.

use super::units::{PctOfBaseline, Percentage, Span, StageIndex, Threshold};
use serde::{Deserialize, Serialize};
use std::fmt;

mod parse;
mod validate;

pub use parse::{PlanError, PlanErrors};

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

impl Matrix {
    /// Whether (file type, size class, provider) is one of the matrix's cells.
    pub fn lists(&self, file_type: &str, size_mb: u32, provider: &str) -> bool {
        self.file_types.iter().any(|f| f == file_type) && self.sizes_mb.contains(&size_mb) && self.providers.iter().any(|p| p == provider)
    }
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

impl Plan {
    pub fn stage(&self, index: StageIndex) -> Option<&Stage> {
        self.stages.get(index.get())
    }

    pub fn last_stage(&self) -> StageIndex {
        StageIndex(self.stages.len().saturating_sub(1) as u32)
    }

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

    /// Whether stage `index`'s uploads can be read by matrix cell (file type, size, provider):
    /// from the event store always, from Prometheus when the source names `matrix_labels`.
    #[cfg(feature = "ssr")]
    pub fn reads_cells(&self, index: StageIndex) -> bool {
        self.source_for(index).is_none_or(|source| source.matrix_labels.is_some())
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

    /// The bucketing group: the configured one or the flag key.
    pub fn bucket_group(&self) -> &str {
        self.flag.group.as_deref().unwrap_or(&self.flag.key)
    }
}

/// The largest plan file, in bytes: sixteen times the shipped plan.
pub const MAX_PLAN_BYTES: usize = 256 * 1024;
/// The most stages a plan may have.
pub const MAX_STAGES: usize = 20;

/// The plan Rampart ships with: the seeds' async-upload rollout.
pub const DEFAULT_PLAN_TOML: &str = include_str!("../../../plans/async-upload.toml");

#[cfg(test)]
mod tests;
