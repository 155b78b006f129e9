//! The stakeholder's summary of a rollout, readable in 30 seconds: one health level with a
//! headline in plain words, and the next milestone with its earliest date.

use super::blocker::Blocker;
use super::gates::{Gate, Verdict};
use super::plan::Plan;
use super::rollout::{Rollout, Status};
use super::units::Timestamp;
use serde::{Deserialize, Serialize};

/// How things are, in one word a stakeholder can act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Everything measured is within its limits.
    Healthy,
    /// Not enough evidence yet, or a person needs to look at something.
    Watching,
    /// A gate fails, or the rollout was rolled back.
    Trouble,
    /// Not started, or complete.
    Idle,
}

impl Level {
    pub fn label(self) -> &'static str {
        match self {
            Level::Healthy => "Healthy",
            Level::Watching => "Watching",
            Level::Trouble => "Trouble",
            Level::Idle => "Idle",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Health {
    pub level: Level,
    pub headline: String,
}

/// The health of a rollout from its state, gates and blockers.
pub fn health(plan: &Plan, state: &Rollout, gates: &[Gate], blockers: &[Blocker]) -> Health {
    let stage = plan.stage(state.stage).map_or("", |s| s.name.as_str());
    let open_alert = blockers.iter().find_map(|b| match b {
        Blocker::AlertOpen { message, .. } => Some(message.clone()),
        _ => None,
    });
    let (level, headline) = match state.status {
        Status::Draft => (Level::Idle, "Not started yet.".to_string()),
        Status::Complete => (Level::Idle, "Complete: the change is on for everyone.".to_string()),
        Status::RolledBack => (Level::Trouble, format!("Rolled back to {stage}; the team is investigating before trying again.")),
        _ if gates.iter().any(|g| g.verdict == Verdict::Fail) => {
            let failing: Vec<&str> = gates.iter().filter(|g| g.verdict == Verdict::Fail).map(|g| g.criterion.label()).collect();
            (Level::Trouble, format!("{stage}: {} outside the limit.", failing.join(" and ")))
        }
        _ if open_alert.is_some() => (Level::Watching, format!("{stage}: under review — {}.", open_alert.unwrap_or_default())),
        Status::Paused => (Level::Watching, format!("{stage}: paused by the team.")),
        Status::AwaitingApproval => (Level::Healthy, format!("{stage}: waiting for an approver to sign off the next step.")),
        _ if gates.iter().any(|g| g.verdict == Verdict::Inconclusive) => {
            let n = gates.first().map_or(0, |g| g.sample);
            (Level::Watching, format!("{stage}: no problems seen; still collecting evidence ({n} uploads so far)."))
        }
        _ if gates.is_empty() => (Level::Healthy, format!("{stage}: running as planned.")),
        _ => (Level::Healthy, format!("{stage}: all success criteria are met.")),
    };
    Health { level, headline }
}

/// The next stage and the earliest time it can start (when the current soak ends).
pub fn next_milestone(plan: &Plan, state: &Rollout) -> Option<(String, Option<Timestamp>)> {
    if matches!(state.status, Status::Complete) {
        return None;
    }
    if state.status == Status::Draft {
        return plan.stage(state.stage).map(|s| (format!("Start: {}", s.name), None));
    }
    let current = plan.stage(state.stage)?;
    let earliest = state.stage_entered_at.map(|t| t.plus(current.soak));
    match plan.stages.get(state.stage.get() + 1) {
        Some(next) => Some((format!("{} ({})", next.name, next.flag), earliest)),
        None => Some(("Completion and the final report".to_string(), earliest)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::gates::Criterion;
    use crate::domain::plan::DEFAULT_PLAN_TOML;
    use crate::domain::units::{StageIndex, Version};

    fn plan() -> Plan {
        Plan::from_toml(DEFAULT_PLAN_TOML).unwrap()
    }

    fn state(stage: u32, status: Status) -> Rollout {
        Rollout { stage: StageIndex(stage), status, version: Version(4), stage_entered_at: Some(Timestamp(0)), request: None }
    }

    fn gate(criterion: Criterion, verdict: Verdict) -> Gate {
        Gate {
            criterion,
            verdict,
            observed: None,
            interval: None,
            threshold: 0.0,
            sample: 37,
            min_sample: 100,
            explanation: String::new(),
            versus_control: None,
            more_uploads: None,
            receipt: None,
        }
    }

    #[test]
    fn the_headline_follows_what_matters_most() {
        let p = plan();
        let h = health(
            &p,
            &state(1, Status::Running),
            &[gate(Criterion::ErrorRate, Verdict::Fail), gate(Criterion::MinEvents, Verdict::Pass)],
            &[],
        );
        assert_eq!((h.level, h.headline.as_str()), (Level::Trouble, "1% rollout: Error rate outside the limit."));
        let h = health(&p, &state(1, Status::Running), &[gate(Criterion::SuccessRate, Verdict::Inconclusive)], &[]);
        assert_eq!(h.level, Level::Watching);
        assert!(h.headline.contains("37 uploads so far"), "{}", h.headline);
        let alert = [Blocker::AlertOpen { id: 1, message: "p95 latency high for 30m".into() }];
        assert!(health(&p, &state(2, Status::Running), &[], &alert).headline.contains("under review — p95 latency"));
        assert_eq!(health(&p, &state(2, Status::Running), &[gate(Criterion::SuccessRate, Verdict::Pass)], &[]).level, Level::Healthy);
        assert_eq!(health(&p, &state(0, Status::RolledBack), &[], &[]).level, Level::Trouble);
        assert_eq!(health(&p, &Rollout::new(), &[], &[]).level, Level::Idle);
    }

    #[test]
    fn the_next_milestone_is_the_next_stage_after_the_soak() {
        let p = plan();
        let (name, when) = next_milestone(&p, &state(1, Status::Running)).unwrap();
        assert_eq!(name, "10% rollout (on for 10%)");
        assert_eq!(when, Some(Timestamp(48 * 3_600_000)));
        assert_eq!(next_milestone(&p, &state(4, Status::Running)).unwrap().0, "Completion and the final report");
        assert_eq!(next_milestone(&p, &state(4, Status::Complete)), None);
    }
}
