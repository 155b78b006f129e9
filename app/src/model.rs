//! What the server sends the views: plain serialisable snapshots, built by the services.

use crate::domain::blocker::Blocker;
use crate::domain::plan::{Plan, StageFlag};
use crate::domain::rollout::Rollout;
use crate::domain::units::{StageIndex, Timestamp};
use serde::{Deserialize, Serialize};

/// Everything the control room shows for one rollout, as of `now`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ControlRoom {
    pub rollout_id: i64,
    pub plan: Plan,
    pub state: Rollout,
    /// The flag as clients are served it right now.
    pub served: StageFlag,
    /// Every stage's checklist items, in plan order.
    pub checklist: Vec<ChecklistItem>,
    /// The recurring lists' items of today (and this week), to tick on their day.
    #[serde(default)]
    pub routines: Vec<ChecklistItem>,
    /// What blocks leaving the current stage.
    pub blockers: Vec<Blocker>,
    /// The current stage's gates, judged on its treatment events so far.
    pub gates: Vec<crate::domain::gates::Gate>,
    /// Alerts, open ones first.
    pub alerts: Vec<Alert>,
    /// The frozen baseline, if recorded.
    pub baseline: Option<crate::domain::stats::Summary>,
    /// Who froze it, when, from which window.
    #[serde(default)]
    pub baseline_window: Option<BaselineWindow>,
    /// The numbers a new baseline would freeze, when the page asked for them.
    #[serde(default)]
    pub baseline_look: Option<BaselineLook>,
    /// Newest first.
    pub audit: Vec<AuditEntry>,
    /// CI runs of the plan's test suites, newest first (the newest few).
    pub test_runs: Vec<TestRun>,
    /// The end-to-end matrix of the current stage, when it requires one.
    #[serde(default)]
    pub matrix: Option<crate::domain::matrix::MatrixView>,
    /// The change's impact against the plan's expected improvements, over the current stage.
    #[serde(default)]
    pub impact: Option<crate::domain::impact::Impact>,
    pub now: Timestamp,
}

/// Who froze a baseline, when, and the window of control uploads it was frozen from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaselineWindow {
    pub captured_at: Timestamp,
    pub captured_by: String,
    pub from: Timestamp,
    pub to: Timestamp,
}

/// What capturing a baseline over `[from, to)` would freeze: the control arm's numbers there,
/// shown to the person before they freeze them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BaselinePreview {
    pub from: Timestamp,
    pub to: Timestamp,
    pub control: crate::domain::stats::Summary,
}

/// The baseline card's look at a window before freezing it: the numbers, or why there are none.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BaselineLook {
    pub hours: u32,
    pub preview: Option<BaselinePreview>,
    pub refusal: Option<String>,
}

impl BaselineLook {
    pub fn new(hours: u32, preview: Result<BaselinePreview, crate::error::AppError>) -> BaselineLook {
        match preview {
            Ok(p) => BaselineLook { hours, preview: Some(p), refusal: None },
            Err(e) => BaselineLook { hours, preview: None, refusal: Some(e.to_string()) },
        }
    }
}

/// A CI run of one of the plan's test suites, as reported (JSON or JUnit XML).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestRun {
    pub id: i64,
    pub stage: u32,
    pub suite: String,
    pub passed: u32,
    pub failed: u32,
    pub skipped: u32,
    /// Passed only on a retry (counted in `passed`).
    pub flaky: u32,
    pub duration_ms: Option<u64>,
    /// `junit` or `json`: how the run was reported.
    pub format: String,
    /// The failed cases kept (the first 200).
    pub failures: Vec<FailedCase>,
    pub url: Option<String>,
    pub reported_by: String,
    pub reported_at: Timestamp,
}

/// One failed test case of a run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailedCase {
    /// The case's class or file, may be empty.
    #[serde(default)]
    pub classname: String,
    pub name: String,
    /// `failure` (an assertion) or `error` (the test could not run to its end).
    #[serde(default = "failure")]
    pub kind: String,
    /// What the tool said: the failure's message, or the start of its text.
    #[serde(default)]
    pub message: String,
}

fn failure() -> String {
    "failure".into()
}

/// An alert raised by the guard loop; while open it blocks advancing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    pub id: i64,
    pub kind: String,
    pub message: String,
    pub raised_at: Timestamp,
    pub acknowledged_by: Option<String>,
    pub acknowledged_at: Option<Timestamp>,
    pub acknowledgement: Option<String>,
}

/// One tickable checklist item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChecklistItem {
    pub id: i64,
    pub stage: StageIndex,
    pub section: String,
    pub text: String,
    pub checked_by: Option<String>,
    pub checked_at: Option<Timestamp>,
    /// A recurring list's day (`2026-11-23`) or week (`week of 2026-11-23`); `None` for a
    /// stage's own item.
    #[serde(default)]
    pub period: Option<String>,
    /// What the person who ticked it found.
    #[serde(default)]
    pub note: Option<String>,
    /// Who looks after it.
    #[serde(default)]
    pub owner: Option<String>,
}

/// A tick (or untick) of one checklist item, with a finding and an owner; an absent note or
/// owner keeps the one the item has.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tick {
    pub checked: bool,
    #[serde(default)]
    pub note: Option<String>,
    #[serde(default)]
    pub owner: Option<String>,
}

/// One line of the audit trail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at: Timestamp,
    pub actor: String,
    pub action: String,
    pub summary: String,
    pub reason: Option<String>,
}

impl AuditEntry {
    /// Who acted, by role instead of by name (for a share link's holder: the link may reach
    /// anyone), in the actor and in the summary.
    pub fn without_name(&mut self) {
        let role = AuditEntry::role_of(&self.action);
        if !self.actor.is_empty() {
            self.summary = self.summary.replace(&self.actor, role);
        }
        self.actor = role.to_string();
    }

    /// The role that takes an action, in words.
    pub fn role_of(action: &str) -> &'static str {
        match action {
            "auto_roll_back" | "alert" => "Rampart's guard",
            "roll_back" | "approve" => "an approver",
            "pause" => "an operator",
            _ => "a team member",
        }
    }
}

/// A flag as every client is served it right now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlagConfig {
    pub key: String,
    pub enabled: bool,
    pub percentage: u8,
    /// The bucketing group (Unleash's `groupId`): the flag key unless the plan sets one.
    pub group: String,
    /// Prefix of the environment-style export (`ASYNC_UPLOAD` → `ASYNC_UPLOAD_ENABLED`).
    pub env_prefix: String,
    /// Changes whenever the rollout behind the flag changes: `<rollout id>.<rollout version>`.
    pub config_version: String,
    pub updated_at: Timestamp,
}

impl FlagConfig {
    pub fn served(&self) -> StageFlag {
        let percentage =
            crate::domain::units::Percentage::new(i64::from(self.percentage)).unwrap_or(crate::domain::units::Percentage::ZERO);
        StageFlag { enabled: self.enabled, percentage }
    }

    /// The strong HTTP validator for this config.
    pub fn etag(&self) -> String {
        format!("\"{}-{}\"", self.key, self.config_version)
    }
}

/// The stakeholder status page: where the rollout is, whether it is healthy, what is next.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusView {
    pub rollout_id: i64,
    pub name: String,
    pub stage: StageIndex,
    pub stage_count: usize,
    pub stage_name: String,
    pub served: StageFlag,
    pub status: crate::domain::rollout::Status,
    pub health: crate::domain::status::Health,
    /// The next milestone and its earliest date.
    pub next: Option<(String, Option<Timestamp>)>,
    /// Key numbers as (label, value), ready to show.
    pub numbers: Vec<(String, String)>,
    /// Every rollback, alert and pause, newest first.
    pub incidents: Vec<AuditEntry>,
    pub now: Timestamp,
}

impl StatusView {
    /// The view for someone who is not signed in (a share link's holder): who acted is told by
    /// role, never by name — the link may reach anyone.
    pub fn without_names(mut self) -> StatusView {
        for incident in &mut self.incidents {
            incident.without_name();
        }
        self
    }

    /// Derives the stakeholder view from the control room's snapshot and the rollout's incidents.
    pub fn from_room(room: &ControlRoom, incidents: Vec<AuditEntry>) -> StatusView {
        use crate::domain::gates::Criterion;
        use crate::domain::status;
        let stage_name = room.plan.stage(room.state.stage).map_or_else(String::new, |s| s.name.clone());
        let mut numbers = vec![("Served".to_string(), room.served.to_string())];
        if let Some(entered) = room.state.stage_entered_at {
            numbers.push(("In this stage for".to_string(), crate::format::duration(room.now.since(entered))));
        }
        for gate in &room.gates {
            let value = match (gate.criterion, gate.observed) {
                (Criterion::MinEvents, Some(v)) => {
                    Some(("Uploads on the new path".to_string(), format!("{v:.0} (at least {} needed)", gate.min_sample)))
                }
                (Criterion::SuccessRate, Some(v)) => Some(("Success rate".to_string(), format!("{v:.2}% (needs ≥ {}%)", gate.threshold))),
                (Criterion::LatencyP95, Some(v)) => {
                    Some(("Slowest 5% of uploads vs before".to_string(), format!("{v:.0}% of baseline (limit {}%)", gate.threshold)))
                }
                _ => None,
            };
            numbers.extend(value);
        }
        StatusView {
            rollout_id: room.rollout_id,
            name: room.plan.name.clone(),
            stage: room.state.stage,
            stage_count: room.plan.stages.len(),
            stage_name,
            served: room.served,
            status: room.state.status,
            health: status::health(&room.plan, &room.state, &room.gates, &room.blockers),
            next: status::next_milestone(&room.plan, &room.state),
            numbers,
            incidents,
            now: room.now,
        }
    }
}

/// A person's account as admins see it (never the password hash).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserView {
    pub id: i64,
    pub name: String,
    pub role: crate::domain::access::Role,
    pub created_at: Timestamp,
    pub created_by: String,
    pub disabled: bool,
}

/// An API token as listed (the token itself is shown once, at creation, and never stored).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenView {
    pub id: i64,
    pub name: String,
    pub scopes: Vec<crate::domain::access::Scope>,
    pub created_at: Timestamp,
    pub created_by: String,
    pub last_used_at: Option<Timestamp>,
    pub revoked: bool,
}

/// An outgoing webhook as listed (its signing secret is shown once, at creation).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookView {
    pub id: i64,
    pub url: String,
    /// Event names sent; empty means all.
    pub events: Vec<String>,
    pub description: String,
    pub created_at: Timestamp,
    pub created_by: String,
    pub disabled: bool,
}

/// One announcement to one webhook, with its latest attempt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryView {
    pub id: i64,
    pub webhook_id: i64,
    pub event: String,
    pub payload: String,
    pub created_at: Timestamp,
    pub attempts: u32,
    /// `delivered`, `retrying` or `failed` (gave up), or `pending` before the first attempt.
    pub state: String,
    pub next_attempt_at: Option<Timestamp>,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub delivered_at: Option<Timestamp>,
}

/// A webhook with its newest deliveries, for the admin page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookLog {
    pub webhook: WebhookView,
    pub deliveries: Vec<DeliveryView>,
}

/// A read-only link to one rollout's status page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareLinkView {
    pub id: i64,
    pub rollout_id: i64,
    pub label: String,
    pub created_at: Timestamp,
    pub created_by: String,
    pub expires_at: Timestamp,
    pub revoked: bool,
}

/// A secret handed out once: a new token or share link, or a generated password.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Issued<T> {
    pub item: T,
    /// Shown once; Rampart keeps only its hash.
    pub secret: String,
}

/// What the admin page lists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminLists {
    pub users: Vec<UserView>,
    pub tokens: Vec<TokenView>,
    pub share_links: Vec<ShareLinkView>,
}

/// One time step of a rollout's charts: each arm's numbers (`None` where the step had no events).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChartPoint {
    pub at: Timestamp,
    pub treatment: crate::domain::stats::Summary,
    pub control: crate::domain::stats::Summary,
    /// Treatment uploads since the window began, for the "enough evidence yet?" chart.
    pub treatment_total: u64,
}

/// A window of chart points, and when the rollout changed stage or rolled back inside it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChartSeries {
    pub from: Timestamp,
    pub to: Timestamp,
    pub step_minutes: i64,
    pub points: Vec<ChartPoint>,
    /// (when, what): stage entries and rollbacks, oldest first.
    pub marks: Vec<(Timestamp, String)>,
}

/// A plan as the plan view's table shows it, in words: what the plan checker answers, so the
/// browser needs no plan parser of its own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanSummary {
    pub name: String,
    pub flag: String,
    pub stages: Vec<StageRow>,
}

/// One stage of [`PlanSummary`]: flag, soak, criteria, what else it requires, how many
/// checklist items it has.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageRow {
    pub name: String,
    pub flag: String,
    pub soak: String,
    pub criteria: String,
    pub requires: String,
    pub items: usize,
}

impl PlanSummary {
    pub fn of(plan: &Plan) -> PlanSummary {
        use crate::domain::units::thousands;
        let stages = plan
            .stages
            .iter()
            .map(|s| {
                let criteria = s.criteria.as_ref().map_or_else(
                    || "—".to_string(),
                    |c| {
                        let relative = c.failures_vs_control_max.map_or_else(String::new, |p| format!(", failures ≤ control + {p} pts"))
                            + &c.latency_vs_control_max.map_or_else(String::new, |p| format!(", slow uploads ≤ control + {p} pts"));
                        format!(
                            "success ≥ {}%, errors ≤ {}%, p95 ≤ {}% of baseline, ≥ {} uploads{relative}",
                            c.success_rate_min.get(),
                            c.error_rate_max.get(),
                            c.latency_max.get(),
                            thousands(u64::from(c.min_events))
                        )
                    },
                );
                let mut requires = Vec::new();
                if s.requires_baseline {
                    requires.push("baseline".to_string());
                }
                if s.requires_matrix {
                    requires.push("E2E matrix".to_string());
                }
                if s.requires_performance_validated {
                    requires.push("performance validated".to_string());
                }
                requires.extend(s.test_suites.iter().map(|t| format!("{} ({} tests)", t.name, t.tests)));
                StageRow {
                    name: s.name.clone(),
                    flag: s.flag.to_string(),
                    soak: s.soak.to_string(),
                    criteria,
                    requires: if requires.is_empty() { "—".to_string() } else { requires.join(", ") },
                    items: s.checklist.iter().map(|c| c.items.len()).sum(),
                }
            })
            .collect();
        PlanSummary { name: plan.name.clone(), flag: plan.flag.key.clone(), stages }
    }
}
