//! The rollout state machine: `apply(state, command, context)` decides whether a command is
//! allowed and what the rollout looks like afterwards. It reads no clock and touches no store;
//! the caller persists the returned state and effects in one transaction.

use super::plan::{Plan, RollbackTarget, StageFlag};
use super::readiness::Blocker;
use super::units::{StageIndex, Timestamp, Version};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Where a rollout stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Created from the plan; nothing served yet beyond stage 0's flag.
    Draft,
    /// In a stage, its soak clock running.
    Running,
    /// Held by a person; the flag stays as it is.
    Paused,
    /// A rollback moved the flag down; the team fixes, then advances again.
    RolledBack,
    /// The last stage was signed off. Terminal.
    Complete,
}

impl Status {
    pub const ALL: [Status; 5] = [Status::Draft, Status::Running, Status::Paused, Status::RolledBack, Status::Complete];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Draft => "draft",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::RolledBack => "rolled_back",
            Status::Complete => "complete",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Words for people.
    pub fn label(self) -> &'static str {
        match self {
            Status::Draft => "Not started",
            Status::Running => "Running",
            Status::Paused => "Paused",
            Status::RolledBack => "Rolled back",
            Status::Complete => "Complete",
        }
    }
}

/// The state `apply` works on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollout {
    pub stage: StageIndex,
    pub status: Status,
    pub version: Version,
    /// When the current stage was entered (its soak starts here); `None` while in draft.
    pub stage_entered_at: Option<Timestamp>,
}

impl Rollout {
    /// A rollout freshly created from a plan.
    pub fn new() -> Rollout {
        Rollout { stage: StageIndex(0), status: Status::Draft, version: Version(1), stage_entered_at: None }
    }
}

impl Default for Rollout {
    fn default() -> Self {
        Rollout::new()
    }
}

/// What a person (or, later, the guard loop) asks of a rollout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    /// Begin stage 0 and its soak clock.
    Start,
    /// Move to the next stage. With an override reason, blockers are recorded instead of refusing.
    Advance { override_reason: Option<String> },
    /// Hold the rollout where it is.
    Pause { reason: Option<String> },
    /// Continue after a pause.
    Resume,
    /// Move the flag down, with the reason written down.
    RollBack { target: RollbackTarget, reason: String },
    /// Sign off the last stage.
    Complete { override_reason: Option<String> },
}

impl Command {
    pub fn name(&self) -> &'static str {
        match self {
            Command::Start => "start",
            Command::Advance { .. } => "advance",
            Command::Pause { .. } => "pause",
            Command::Resume => "resume",
            Command::RollBack { .. } => "roll_back",
            Command::Complete { .. } => "complete",
        }
    }

    /// The written reason carried by the command, if any.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Command::Advance { override_reason: r } | Command::Complete { override_reason: r } | Command::Pause { reason: r } => {
                r.as_deref()
            }
            Command::RollBack { reason, .. } => Some(reason),
            Command::Start | Command::Resume => None,
        }
    }

    /// Builds a command from the fields an HTML form or a JSON body carries. A blank reason
    /// counts as none.
    pub fn from_parts(action: &str, target: Option<&str>, reason: Option<&str>) -> Result<Command, String> {
        let reason = reason.map(str::trim).filter(|r| !r.is_empty()).map(str::to_string);
        Ok(match action {
            "start" => Command::Start,
            "advance" => Command::Advance { override_reason: reason },
            "pause" => Command::Pause { reason },
            "resume" => Command::Resume,
            "complete" => Command::Complete { override_reason: reason },
            "roll_back" => Command::RollBack {
                target: match target.unwrap_or("off") {
                    "off" => RollbackTarget::Off,
                    "previous" => RollbackTarget::Previous,
                    other => return Err(format!("target: `{other}` is not a rollback target (off or previous)")),
                },
                reason: reason.unwrap_or_default(),
            },
            other => {
                return Err(format!("action: `{other}` is not a command (start, advance, pause, resume, roll_back, complete)"));
            }
        })
    }
}

/// Why a command was not applied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Refusal {
    #[error("the rollout changed meanwhile: you acted on {expected}, it is now at {current}")]
    Conflict { expected: Version, current: Version },
    #[error("cannot {command} while the rollout is {}", status.label().to_lowercase())]
    NotAllowed { command: &'static str, status: Status },
    #[error("already at the last stage: complete the rollout instead")]
    AtLastStage,
    #[error("not at the last stage yet: advance instead")]
    NotAtLastStage,
    #[error("already at stage 0 with the flag off: nothing to roll back")]
    NothingToRollBack,
    #[error("a written reason is required to {0}")]
    ReasonRequired(&'static str),
    #[error("not ready: {}", blockers.iter().map(|b| b.to_string()).collect::<Vec<_>>().join("; "))]
    Blocked { blockers: Vec<Blocker> },
}

/// Something the caller must carry out because of the transition, in the same transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Effect {
    /// The flag as served to clients changed.
    FlagChanged { from: StageFlag, to: StageFlag },
    /// A stage was left (its history row closes).
    StageLeft { stage: StageIndex, how: &'static str },
    /// A stage was entered at `at` (its soak restarts).
    StageEntered { stage: StageIndex },
}

/// An accepted command: the new state, what to do about it, and any blockers that an override
/// pushed past (for the audit trail).
#[derive(Clone, Debug, PartialEq)]
pub struct Transition {
    pub state: Rollout,
    pub effects: Vec<Effect>,
    pub overridden: Vec<Blocker>,
}

/// What `apply` needs besides the state: the plan, the time, and what currently blocks leaving
/// the stage (computed by [`super::readiness::blockers`]).
pub struct Context<'a> {
    pub plan: &'a Plan,
    pub now: Timestamp,
    pub blockers: &'a [Blocker],
}

/// The flag clients are served for a rollout in `state`.
pub fn served_flag(plan: &Plan, state: &Rollout) -> StageFlag {
    match state.status {
        Status::Draft => StageFlag::OFF,
        _ => plan.stage(state.stage).map_or(StageFlag::OFF, |s| s.flag),
    }
}

/// Decides `command` against `state`, which the caller read at `expected` version.
pub fn apply(state: &Rollout, expected: Version, command: &Command, cx: &Context<'_>) -> Result<Transition, Refusal> {
    if state.version != expected {
        return Err(Refusal::Conflict { expected, current: state.version });
    }
    let not_allowed = || Refusal::NotAllowed { command: command.name(), status: state.status };
    let last = cx.plan.last_stage();
    let mut next = state.clone();
    let mut overridden = Vec::new();

    match command {
        Command::Start => {
            if state.status != Status::Draft {
                return Err(not_allowed());
            }
            next.status = Status::Running;
            next.stage = StageIndex(0);
        }
        Command::Advance { override_reason } | Command::Complete { override_reason } => {
            if !matches!(state.status, Status::Running | Status::RolledBack) {
                return Err(not_allowed());
            }
            let completing = matches!(command, Command::Complete { .. });
            match (completing, state.stage == last) {
                (false, true) => return Err(Refusal::AtLastStage),
                (true, false) => return Err(Refusal::NotAtLastStage),
                _ => {}
            }
            // An open alert is the one blocker a written reason cannot push past: it must be
            // acknowledged first.
            if cx.blockers.iter().any(|b| matches!(b, Blocker::AlertOpen { .. })) {
                return Err(Refusal::Blocked { blockers: cx.blockers.to_vec() });
            }
            if !cx.blockers.is_empty() {
                match override_reason.as_deref().map(str::trim) {
                    Some(r) if !r.is_empty() => overridden = cx.blockers.to_vec(),
                    _ => return Err(Refusal::Blocked { blockers: cx.blockers.to_vec() }),
                }
            }
            if completing {
                next.status = Status::Complete;
            } else {
                next.stage = StageIndex(state.stage.0 + 1);
                next.status = Status::Running;
            }
        }
        Command::Pause { .. } => {
            if state.status != Status::Running {
                return Err(not_allowed());
            }
            next.status = Status::Paused;
        }
        Command::Resume => {
            if state.status != Status::Paused {
                return Err(not_allowed());
            }
            next.status = Status::Running;
        }
        Command::RollBack { target, reason } => {
            if !matches!(state.status, Status::Running | Status::Paused | Status::RolledBack) {
                return Err(not_allowed());
            }
            if reason.trim().is_empty() {
                return Err(Refusal::ReasonRequired("roll back"));
            }
            if state.stage.0 == 0 {
                return Err(Refusal::NothingToRollBack);
            }
            next.stage = match target {
                RollbackTarget::Off => StageIndex(0),
                RollbackTarget::Previous => StageIndex(state.stage.0 - 1),
            };
            next.status = Status::RolledBack;
        }
    }

    next.version = state.version.next();
    let mut effects = Vec::new();
    let stage_changed = next.stage != state.stage || state.status == Status::Draft;
    if stage_changed {
        if state.status != Status::Draft {
            let how = if next.stage > state.stage { "advanced" } else { "rolled_back" };
            effects.push(Effect::StageLeft { stage: state.stage, how });
        }
        next.stage_entered_at = Some(cx.now);
        effects.push(Effect::StageEntered { stage: next.stage });
    }
    if next.status == Status::Complete {
        effects.push(Effect::StageLeft { stage: state.stage, how: "completed" });
    }
    let (from, to) = (served_flag(cx.plan, state), served_flag(cx.plan, &next));
    if from != to {
        effects.push(Effect::FlagChanged { from, to });
    }
    Ok(Transition { state: next, effects, overridden })
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::plan::DEFAULT_PLAN_TOML;
    use crate::domain::units::Span;
    use proptest::prelude::*;

    fn plan() -> Plan {
        Plan::from_toml(DEFAULT_PLAN_TOML).unwrap()
    }

    const NOW: Timestamp = Timestamp(1_700_000_000_000);

    fn at(stage: u32, status: Status) -> Rollout {
        Rollout { stage: StageIndex(stage), status, version: Version(7), stage_entered_at: Some(Timestamp(0)) }
    }

    fn advance() -> Command {
        Command::Advance { override_reason: None }
    }

    fn roll_back(target: RollbackTarget) -> Command {
        Command::RollBack { target, reason: "error spike".into() }
    }

    /// Applies `command` with no blockers and returns the new (stage, status) or the refusal.
    fn check(state: Rollout, command: Command, expected: Result<(u32, Status), Refusal>) {
        let plan = plan();
        let cx = Context { plan: &plan, now: NOW, blockers: &[] };
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
    fn a_stale_version_is_a_conflict() {
        let plan = plan();
        let cx = Context { plan: &plan, now: NOW, blockers: &[] };
        let state = at(1, Status::Running);
        let refusal = apply(&state, Version(6), &advance(), &cx).unwrap_err();
        assert_eq!(refusal, Refusal::Conflict { expected: Version(6), current: Version(7) });
    }

    #[test]
    fn blockers_refuse_an_advance_unless_overridden_with_a_reason() {
        let plan = plan();
        let blockers = [Blocker::SoakRemaining { remaining: Span::from_secs(3600) }];
        let cx = Context { plan: &plan, now: NOW, blockers: &blockers };
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
        let plan = plan();
        let blockers = [Blocker::AlertOpen { id: 3, message: "latency drift".into() }];
        let cx = Context { plan: &plan, now: NOW, blockers: &blockers };
        let state = at(1, Status::Running);
        let forced = Command::Advance { override_reason: Some("we are sure".into()) };
        assert!(matches!(apply(&state, state.version, &forced, &cx), Err(Refusal::Blocked { .. })));
    }

    #[test]
    fn advancing_changes_the_served_flag_and_restarts_the_soak() {
        let plan = plan();
        let cx = Context { plan: &plan, now: NOW, blockers: &[] };
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
        let cx = Context { plan: &plan, now: NOW, blockers: &[] };
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
            steps in prop::collection::vec((any_command(), any::<bool>(), any::<bool>()), 1..60)
        ) {
            let plan = plan();
            let blocked = [Blocker::ChecklistIncomplete { open: 3, total: 40 }];
            let mut state = Rollout::new();
            let mut now = NOW;
            for (command, blocked_now, stale) in steps {
                now = now.plus(Span::from_secs(60));
                let blockers: &[Blocker] = if blocked_now { &blocked } else { &[] };
                let cx = Context { plan: &plan, now, blockers };
                let expected = if stale { Version(state.version.0.saturating_sub(1)) } else { state.version };
                if let Ok(t) = apply(&state, expected, &command, &cx) {
                    let next = t.state;
                    prop_assert!(!stale || state.version == expected);
                    prop_assert_ne!(state.status, Status::Complete, "complete is terminal");
                    prop_assert_eq!(next.version, state.version.next());
                    prop_assert!(next.stage <= plan.last_stage());
                    match &command {
                        Command::Advance { .. } => prop_assert_eq!(next.stage.0, state.stage.0 + 1),
                        Command::RollBack { .. } => prop_assert!(next.stage < state.stage),
                        _ => prop_assert_eq!(next.stage, state.stage),
                    }
                    if blocked_now && matches!(command, Command::Advance { .. } | Command::Complete { .. }) {
                        prop_assert!(command.reason().is_some_and(|r| !r.trim().is_empty()), "blocked advance needs a reason");
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
}
