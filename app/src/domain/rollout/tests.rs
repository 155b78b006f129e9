//! Tests of `rollout.rs`: the state machine.

use super::*;
use crate::domain::plan::DEFAULT_PLAN_TOML;
use crate::domain::units::Span;
use proptest::prelude::*;

/// The default plan: one approval, never by the person who asked.
fn plan() -> Plan {
    Plan::from_toml(DEFAULT_PLAN_TOML).unwrap()
}

/// A plan whose approvers may approve their own requests, so one click advances.
fn self_approving() -> Plan {
    let mut plan = plan();
    plan.approvals.allow_self_approval = true;
    plan
}

const ANA: Actor<'static> = Actor { name: "ana", may_approve: true };
const BEA: Actor<'static> = Actor { name: "bea", may_approve: true };
const OTTO: Actor<'static> = Actor { name: "otto", may_approve: false };

fn cx<'a>(plan: &'a Plan, blockers: &'a [Blocker], actor: Actor<'a>) -> Context<'a> {
    Context { plan, now: NOW, blockers, actor }
}

const NOW: Timestamp = Timestamp(1_700_000_000_000);

fn at(stage: u32, status: Status) -> Rollout {
    Rollout { stage: StageIndex(stage), status, version: Version(7), stage_entered_at: Some(Timestamp(0)), request: None }
}

fn advance() -> Command {
    Command::Advance { override_reason: None }
}

fn roll_back(target: RollbackTarget) -> Command {
    Command::RollBack { target, reason: "error spike".into() }
}

/// Applies `command`, given by an approver under a self-approving plan with no blockers, and
/// returns the new (stage, status) or the refusal.
fn check(state: Rollout, command: Command, expected: Result<(u32, Status), Refusal>) {
    let plan = self_approving();
    let cx = cx(&plan, &[], ANA);
    let got = apply(&state, state.version, &command, &cx).map(|t| (t.state.stage.0, t.state.status));
    assert_eq!(got, expected, "{command:?} from {state:?}");
}

#[test]
fn commands_move_the_rollout_as_the_plan_says() {
    use Status::*;
    check(Rollout::new(), Command::Start, Ok((0, Running)));
    check(at(0, Status::Running), Command::Start, Err(Refusal::NotAllowed { command: "start", status: Running }));
    check(at(0, Status::Running), advance(), Ok((1, Running)));
    check(at(3, Status::Running), advance(), Ok((4, Running)));
    check(at(4, Status::Running), advance(), Err(Refusal::AtLastStage));
    check(at(4, Status::Running), Command::Complete { override_reason: None }, Ok((4, Complete)));
    check(at(2, Status::Running), Command::Complete { override_reason: None }, Err(Refusal::NotAtLastStage));
    check(Rollout::new(), advance(), Err(Refusal::NotAllowed { command: "advance", status: Draft }));
    check(at(2, Paused), advance(), Err(Refusal::NotAllowed { command: "advance", status: Paused }));
    check(at(2, Status::Running), Command::Pause { reason: None }, Ok((2, Paused)));
    check(at(2, Paused), Command::Pause { reason: None }, Err(Refusal::NotAllowed { command: "pause", status: Paused }));
    check(at(2, Paused), Command::Resume, Ok((2, Running)));
    check(at(2, Status::Running), Command::Resume, Err(Refusal::NotAllowed { command: "resume", status: Running }));
    check(at(3, Status::Running), roll_back(RollbackTarget::Off), Ok((0, RolledBack)));
    check(at(3, Paused), roll_back(RollbackTarget::Previous), Ok((2, RolledBack)));
    check(at(2, RolledBack), advance(), Ok((3, Running)));
    check(at(0, Status::Running), roll_back(RollbackTarget::Off), Err(Refusal::NothingToRollBack));
    check(
        at(2, Status::Running),
        Command::RollBack { target: RollbackTarget::Off, reason: "  ".into() },
        Err(Refusal::ReasonRequired("roll back")),
    );
    check(at(4, Complete), roll_back(RollbackTarget::Off), Err(Refusal::NotAllowed { command: "roll_back", status: Complete }));
}

#[test]
fn an_advance_waits_for_an_approver_other_than_the_asker() {
    let plan = plan();
    let state = at(1, Status::Running);
    let asked = apply(&state, state.version, &advance(), &cx(&plan, &[], OTTO)).unwrap();
    assert_eq!((asked.state.stage, asked.state.status), (StageIndex(1), Status::AwaitingApproval));
    assert!(asked.effects.is_empty(), "the flag and the soak clock stay until approval");
    let request = asked.state.request.clone().unwrap();
    assert_eq!((request.by.as_str(), request.approvals.len(), request.from), ("otto", 0, Status::Running));

    let waiting = asked.state;
    let v = waiting.version;
    assert_eq!(apply(&waiting, v, &Command::Approve, &cx(&plan, &[], OTTO)).unwrap_err(), Refusal::NotAnApprover);
    assert_eq!(
        apply(&waiting, v, &advance(), &cx(&plan, &[], ANA)).unwrap_err(),
        Refusal::NotAllowed { command: "advance", status: Status::AwaitingApproval }
    );
    let approved = apply(&waiting, v, &Command::Approve, &cx(&plan, &[], ANA)).unwrap();
    assert_eq!((approved.state.stage, approved.state.status, approved.state.request), (StageIndex(2), Status::Running, None));
    assert!(approved.effects.contains(&Effect::FlagChanged { from: plan.stages[1].flag, to: plan.stages[2].flag }));

    // An approver asking counts for nothing when the plan forbids self-approval.
    let own = apply(&state, state.version, &advance(), &cx(&plan, &[], ANA)).unwrap().state;
    assert_eq!(own.status, Status::AwaitingApproval);
    assert_eq!(apply(&own, own.version, &Command::Approve, &cx(&plan, &[], ANA)).unwrap_err(), Refusal::SelfApproval("ana".into()));
    assert_eq!(apply(&own, own.version, &Command::Approve, &cx(&plan, &[], BEA)).unwrap().state.stage, StageIndex(2));
}

#[test]
fn a_plan_may_need_several_distinct_approvers() {
    let mut plan = self_approving();
    plan.approvals.required = 3;
    let state = at(4, Status::Running);
    let complete = Command::Complete { override_reason: None };
    let first = apply(&state, state.version, &complete, &cx(&plan, &[], ANA)).unwrap().state;
    assert_eq!(first.request.as_ref().unwrap().approvals.len(), 1, "the asker's own approval counts here");
    assert_eq!(apply(&first, first.version, &Command::Approve, &cx(&plan, &[], ANA)).unwrap_err(), Refusal::AlreadyApproved("ana".into()));
    let second = apply(&first, first.version, &Command::Approve, &cx(&plan, &[], BEA)).unwrap().state;
    assert_eq!(second.status, Status::AwaitingApproval);
    assert_eq!(second.request.as_ref().unwrap().tally(&plan), "2 of 3 approvals");
    let carla = Actor { name: "carla", may_approve: true };
    let done = apply(&second, second.version, &Command::Approve, &cx(&plan, &[], carla)).unwrap().state;
    assert_eq!((done.status, done.stage), (Status::Complete, StageIndex(4)));
}

#[test]
fn approval_judges_the_blockers_again() {
    let plan = plan();
    let state = at(2, Status::RolledBack);
    let waiting = apply(&state, state.version, &advance(), &cx(&plan, &[], OTTO)).unwrap().state;
    let soak = [Blocker::SoakRemaining { remaining: Span::from_secs(60) }];
    let refusal = apply(&waiting, waiting.version, &Command::Approve, &cx(&plan, &soak, ANA)).unwrap_err();
    assert!(matches!(refusal, Refusal::Blocked { .. }), "no reason was given for going past the soak");

    // A request with an override reason carries it; an alert raised meanwhile still stops it.
    let forced = Command::Advance { override_reason: Some("soak waived: same build ran at 10% last week".into()) };
    let waiting = apply(&state, state.version, &forced, &cx(&plan, &soak, ANA)).unwrap().state;
    let alert = [Blocker::AlertOpen { id: 1, message: "latency drift".into() }];
    assert!(matches!(apply(&waiting, waiting.version, &Command::Approve, &cx(&plan, &alert, BEA)), Err(Refusal::Blocked { .. })));
    let t = apply(&waiting, waiting.version, &Command::Approve, &cx(&plan, &soak, BEA)).unwrap();
    assert_eq!((t.state.stage, t.overridden), (StageIndex(3), soak.to_vec()));
}

#[test]
fn a_waiting_request_can_be_declined_paused_or_rolled_back() {
    let plan = plan();
    let state = at(2, Status::RolledBack);
    let waiting = apply(&state, state.version, &advance(), &cx(&plan, &[], OTTO)).unwrap().state;
    let v = waiting.version;
    let blank = Command::Decline { reason: " ".into() };
    assert_eq!(apply(&waiting, v, &blank, &cx(&plan, &[], ANA)).unwrap_err(), Refusal::ReasonRequired("decline"));
    let declined = apply(&waiting, v, &Command::Decline { reason: "wait for the provider fix".into() }, &cx(&plan, &[], ANA));
    let declined = declined.unwrap().state;
    assert_eq!((declined.status, declined.request), (Status::RolledBack, None), "back where it was asked from");
    let paused = apply(&waiting, v, &Command::Pause { reason: None }, &cx(&plan, &[], OTTO)).unwrap().state;
    assert_eq!((paused.status, paused.request), (Status::Paused, None));
    let rolled = apply(&waiting, v, &roll_back(RollbackTarget::Off), &Context { actor: Actor::machine("guard"), ..cx(&plan, &[], OTTO) });
    assert_eq!(rolled.unwrap().state.stage, StageIndex(0));
    assert_eq!(
        apply(&state, state.version, &Command::Approve, &cx(&plan, &[], ANA)).unwrap_err(),
        Refusal::NotAllowed { command: "approve", status: Status::RolledBack }
    );
}

#[test]
fn a_stale_version_is_a_conflict() {
    let plan = plan();
    let cx = cx(&plan, &[], ANA);
    let state = at(1, Status::Running);
    let refusal = apply(&state, Version(6), &advance(), &cx).unwrap_err();
    assert_eq!(refusal, Refusal::Conflict { expected: Version(6), current: Version(7) });
}

#[test]
fn blockers_refuse_an_advance_unless_overridden_with_a_reason() {
    let plan = self_approving();
    let blockers = [Blocker::SoakRemaining { remaining: Span::from_secs(3600) }];
    let cx = cx(&plan, &blockers, ANA);
    let state = at(1, Status::Running);
    assert_eq!(apply(&state, state.version, &advance(), &cx).unwrap_err(), Refusal::Blocked { blockers: blockers.to_vec() });
    let blank = Command::Advance { override_reason: Some("   ".into()) };
    assert!(matches!(apply(&state, state.version, &blank, &cx), Err(Refusal::Blocked { .. })));
    let forced = Command::Advance { override_reason: Some("soak waived by the incident lead".into()) };
    let t = apply(&state, state.version, &forced, &cx).unwrap();
    assert_eq!(t.state.stage, StageIndex(2));
    assert_eq!(t.overridden, blockers.to_vec());
}

#[test]
fn an_open_alert_cannot_be_overridden() {
    let plan = self_approving();
    let blockers = [Blocker::AlertOpen { id: 3, message: "latency drift".into() }];
    let cx = cx(&plan, &blockers, ANA);
    let state = at(1, Status::Running);
    let forced = Command::Advance { override_reason: Some("we are sure".into()) };
    assert!(matches!(apply(&state, state.version, &forced, &cx), Err(Refusal::Blocked { .. })));
}

#[test]
fn advancing_changes_the_served_flag_and_restarts_the_soak() {
    let plan = self_approving();
    let cx = cx(&plan, &[], ANA);
    let state = at(1, Status::Running);
    let t = apply(&state, state.version, &advance(), &cx).unwrap();
    assert_eq!(t.state.version, Version(8));
    assert_eq!(t.state.stage_entered_at, Some(NOW));
    assert_eq!(
        t.effects,
        vec![
            Effect::StageLeft { stage: StageIndex(1), how: "advanced" },
            Effect::StageEntered { stage: StageIndex(2) },
            Effect::FlagChanged { from: plan.stages[1].flag, to: plan.stages[2].flag },
        ]
    );
    let paused = apply(&t.state, t.state.version, &Command::Pause { reason: None }, &cx).unwrap();
    assert!(paused.effects.is_empty(), "pausing keeps the flag and the soak clock");
}

#[test]
fn a_rollback_to_off_serves_the_flag_off() {
    let plan = plan();
    let cx = cx(&plan, &[], ANA);
    let state = at(2, Status::Running);
    let t = apply(&state, state.version, &roll_back(RollbackTarget::Off), &cx).unwrap();
    assert_eq!(served_flag(&plan, &t.state), StageFlag::OFF);
    assert!(t.effects.contains(&Effect::FlagChanged { from: plan.stages[2].flag, to: StageFlag::OFF }));
}

#[test]
fn commands_are_built_from_form_fields_with_clear_errors() {
    assert_eq!(Command::from_parts("advance", None, Some("  ")), Ok(advance()));
    assert_eq!(
        Command::from_parts("roll_back", Some("previous"), Some("latency")),
        Ok(Command::RollBack { target: RollbackTarget::Previous, reason: "latency".into() })
    );
    assert!(Command::from_parts("jump", None, None).unwrap_err().starts_with("action:"));
    assert!(Command::from_parts("roll_back", Some("sideways"), None).unwrap_err().starts_with("target:"));
}

fn any_command() -> impl Strategy<Value = Command> {
    let reason = prop_oneof![Just(None), Just(Some(String::new())), Just(Some("because".to_string()))];
    prop_oneof![
        Just(Command::Start),
        reason.clone().prop_map(|r| Command::Advance { override_reason: r }),
        reason.clone().prop_map(|r| Command::Pause { reason: r }),
        Just(Command::Resume),
        Just(Command::Approve),
        prop_oneof![Just(""), Just("not yet")].prop_map(|r| Command::Decline { reason: r.into() }),
        (prop_oneof![Just(RollbackTarget::Off), Just(RollbackTarget::Previous)], prop_oneof![Just(""), Just("spike")])
            .prop_map(|(target, r)| Command::RollBack { target, reason: r.into() }),
        reason.prop_map(|r| Command::Complete { override_reason: r }),
    ]
}

proptest! {
    /// No sequence of commands skips a stage, leaves the plan, loses a version, or leaves a
    /// completed rollout; every refusal leaves the state untouched.
    #[test]
    fn no_command_sequence_breaks_the_invariants(
        steps in prop::collection::vec((any_command(), any::<bool>(), any::<bool>(), 0..3usize), 1..60),
        required in 1..3u32,
        allow_self in any::<bool>(),
    ) {
        let mut plan = plan();
        plan.approvals.required = required;
        plan.approvals.allow_self_approval = allow_self;
        let actors = [ANA, BEA, OTTO];
        let blocked = [Blocker::ChecklistIncomplete { open: 3, total: 40 }];
        let mut state = Rollout::new();
        let mut now = NOW;
        for (command, blocked_now, stale, actor) in steps {
            now = now.plus(Span::from_secs(60));
            let blockers: &[Blocker] = if blocked_now { &blocked } else { &[] };
            let cx = Context { plan: &plan, now, blockers, actor: actors[actor] };
            let expected = if stale { Version(state.version.0.saturating_sub(1)) } else { state.version };
            if let Ok(t) = apply(&state, expected, &command, &cx) {
                let next = t.state;
                prop_assert!(!stale || state.version == expected);
                prop_assert_ne!(state.status, Status::Complete, "complete is terminal");
                prop_assert_eq!(next.version, state.version.next());
                prop_assert!(next.stage <= plan.last_stage());
                prop_assert_eq!(next.request.is_some(), next.status == Status::AwaitingApproval);
                if let Some(request) = &next.request {
                    prop_assert!(request.approvals.len() < required as usize);
                    let mut approvers: Vec<&str> = request.approvals.iter().map(|a| a.by.as_str()).collect();
                    approvers.sort_unstable();
                    approvers.dedup();
                    prop_assert_eq!(approvers.len(), request.approvals.len(), "nobody approves twice");
                    prop_assert!(allow_self || !approvers.contains(&request.by.as_str()));
                    prop_assert!(!approvers.contains(&"otto"), "only approvers approve");
                }
                match &command {
                    Command::Advance { .. } | Command::Approve if next.status == Status::Running => {
                        prop_assert_eq!(next.stage.0, state.stage.0 + 1)
                    }
                    Command::RollBack { .. } => prop_assert!(next.stage < state.stage),
                    _ => prop_assert_eq!(next.stage, state.stage),
                }
                let reason = match &command {
                    Command::Approve => state.request.as_ref().and_then(|r| r.override_reason.clone()),
                    other => other.reason().map(str::to_string),
                };
                if blocked_now && matches!(command, Command::Advance { .. } | Command::Complete { .. } | Command::Approve) {
                    prop_assert!(reason.is_some_and(|r| !r.trim().is_empty()), "going past blockers needs a reason");
                    prop_assert_eq!(t.overridden.len(), 1);
                }
                if next.stage != state.stage {
                    prop_assert_eq!(next.stage_entered_at, Some(now));
                }
                prop_assert!(next.status != Status::Draft);
                state = next;
            }
        }
    }
}
