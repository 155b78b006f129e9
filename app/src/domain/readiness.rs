//! What still stands between the current stage and the next: soak time, the checklist, the
//! baseline and the test suites the plan requires. Metric gates join this list when the gate
//! evaluation lands; every blocker has words an approver can act on.

use super::blocker::Blocker;
use super::gates::{Gate, Verdict};
use super::plan::Plan;
use super::rollout::{Rollout, Status};
use super::units::{Span, Timestamp};
use serde::{Deserialize, Serialize};

/// The facts about the current stage that the store knows.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StageEvidence {
    pub checklist_done: u32,
    pub checklist_total: u32,
    pub baseline_recorded: bool,
    /// The newest report of each suite for this stage.
    pub suite_results: Vec<SuiteResult>,
    /// The stage's gates, judged on its treatment events so far.
    pub gates: Vec<Gate>,
    /// Unacknowledged alerts: (id, message).
    pub open_alerts: Vec<(i64, String)>,
}

/// What CI reported for one test suite.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuiteResult {
    pub suite: String,
    pub passed: u32,
    pub failed: u32,
}

/// Everything that blocks leaving the current stage at `now`, in the order a person would check.
pub fn blockers(plan: &Plan, state: &Rollout, evidence: &StageEvidence, now: Timestamp) -> Vec<Blocker> {
    let Some(stage) = plan.stage(state.stage) else { return Vec::new() };
    if matches!(state.status, Status::Draft | Status::Complete) {
        return Vec::new();
    }
    let mut out = Vec::new();
    if let Some(entered) = state.stage_entered_at {
        let elapsed = now.since(entered);
        if elapsed < stage.soak {
            out.push(Blocker::SoakRemaining { remaining: Span::from_secs(stage.soak.secs() - elapsed.secs()) });
        }
    }
    if evidence.checklist_done < evidence.checklist_total {
        out.push(Blocker::ChecklistIncomplete {
            open: evidence.checklist_total - evidence.checklist_done,
            total: evidence.checklist_total,
        });
    }
    if stage.requires_baseline && !evidence.baseline_recorded {
        out.push(Blocker::BaselineMissing);
    }
    for gate in evidence.gates.iter().filter(|g| g.verdict != Verdict::Pass) {
        out.push(Blocker::GateNotPassed {
            criterion: gate.criterion.label().to_string(),
            verdict: gate.verdict,
            explanation: gate.explanation.clone(),
        });
    }
    for (id, message) in &evidence.open_alerts {
        out.push(Blocker::AlertOpen { id: *id, message: message.clone() });
    }
    for suite in &stage.test_suites {
        // A suite passes when its newest run has at least the plan's count passing and none failing.
        let result = evidence.suite_results.iter().find(|r| r.suite == suite.name);
        if result.is_none_or(|r| r.passed < suite.tests || r.failed > 0) {
            out.push(Blocker::TestSuiteNotPassed {
                suite: suite.name.clone(),
                passed: result.map(|r| r.passed),
                required: suite.tests,
                failed: result.map_or(0, |r| r.failed),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::plan::DEFAULT_PLAN_TOML;
    use crate::domain::units::{StageIndex, Version};

    const HOUR: i64 = 3_600_000;

    fn state(stage: u32, entered_hours_ago: i64) -> Rollout {
        Rollout {
            stage: StageIndex(stage),
            status: Status::Running,
            version: Version(3),
            stage_entered_at: Some(Timestamp(100 * HOUR - entered_hours_ago * HOUR)),
            request: None,
        }
    }

    fn done(total: u32) -> StageEvidence {
        StageEvidence { checklist_done: total, checklist_total: total, ..Default::default() }
    }

    #[test]
    fn soak_blocks_until_it_has_elapsed_exactly() {
        let plan = Plan::from_toml(DEFAULT_PLAN_TOML).unwrap();
        let now = Timestamp(100 * HOUR);
        assert_eq!(blockers(&plan, &state(1, 47), &done(4), now), vec![Blocker::SoakRemaining { remaining: Span::from_secs(3600) }]);
        assert_eq!(blockers(&plan, &state(1, 48), &done(4), now), vec![]);
    }

    #[test]
    fn stage_zero_needs_its_checklist_baseline_and_phase_1_suite() {
        let plan = Plan::from_toml(DEFAULT_PLAN_TOML).unwrap();
        let now = Timestamp(100 * HOUR);
        let evidence = StageEvidence { checklist_done: 10, checklist_total: 72, ..Default::default() };
        let got = blockers(&plan, &state(0, 30), &evidence, now);
        assert_eq!(
            got,
            vec![
                Blocker::ChecklistIncomplete { open: 62, total: 72 },
                Blocker::BaselineMissing,
                Blocker::TestSuiteNotPassed { suite: "Phase 1".into(), passed: None, required: 16, failed: 0 },
            ]
        );
        assert_eq!(got[2].to_string(), "Phase 1 tests: no result reported (16 must pass)");
        let run = |passed, failed| vec![SuiteResult { suite: "Phase 1".into(), passed, failed }];
        let ready = StageEvidence { baseline_recorded: true, suite_results: run(16, 0), ..done(72) };
        assert_eq!(blockers(&plan, &state(0, 30), &ready, now), vec![]);
        let partial = StageEvidence { suite_results: run(15, 0), ..ready.clone() };
        assert_eq!(blockers(&plan, &state(0, 30), &partial, now)[0].to_string(), "Phase 1 tests: 15/16 passing");
        let failing = StageEvidence { suite_results: run(17, 1), ..ready };
        assert_eq!(blockers(&plan, &state(0, 30), &failing, now)[0].to_string(), "Phase 1 tests: 17/16 passing, 1 failing");
    }

    #[test]
    fn nothing_blocks_a_draft_or_a_completed_rollout() {
        let plan = Plan::from_toml(DEFAULT_PLAN_TOML).unwrap();
        let mut s = state(4, 0);
        s.status = Status::Complete;
        assert!(blockers(&plan, &s, &StageEvidence::default(), Timestamp(100 * HOUR)).is_empty());
        assert!(blockers(&plan, &Rollout::new(), &StageEvidence::default(), Timestamp(0)).is_empty());
    }
}
