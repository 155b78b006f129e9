//! The rollout state machine: `apply(state, command, context)` decides whether a command is
//! allowed and what the rollout looks like afterwards. It reads no clock and touches no store;
//! the caller persists the returned state and effects in one transaction.

use super::blocker::Blocker;
use super::plan::{Plan, RollbackTarget, StageFlag};
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
    /// Somebody asked to advance (or complete); the plan's approvers have not all approved yet.
    /// The stage, its flag and its soak clock carry on meanwhile.
    AwaitingApproval,
    /// A rollback moved the flag down; the team fixes, then advances again.
    RolledBack,
    /// The last stage was signed off. Terminal.
    Complete,
}

impl Status {
    pub const ALL: [Status; 6] =
        [Status::Draft, Status::Running, Status::AwaitingApproval, Status::Paused, Status::RolledBack, Status::Complete];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Draft => "draft",
            Status::Running => "running",
            Status::AwaitingApproval => "awaiting_approval",
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
            Status::AwaitingApproval => "Awaiting approval",
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
    /// The advance waiting for approval; `Some` exactly while the status is awaiting approval.
    pub request: Option<Request>,
}

/// An advance (or the completion) somebody asked for, and who has approved it so far.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Completing the last stage rather than advancing to the next one.
    pub complete: bool,
    pub by: String,
    pub at: Timestamp,
    /// Set when the request pushes past blockers; approving it endorses the reason.
    pub override_reason: Option<String>,
    /// Where a declined request returns the rollout (running or rolled back).
    pub from: Status,
    pub approvals: Vec<Approval>,
}

impl Request {
    /// How far the request is, for people: "1 of 2 approvals".
    pub fn tally(&self, plan: &Plan) -> String {
        let required = plan.approvals.required.max(1);
        format!("{} of {required} approval{}", self.approvals.len(), if required == 1 { "" } else { "s" })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub by: String,
    pub at: Timestamp,
}

impl Rollout {
    /// A rollout freshly created from a plan.
    pub fn new() -> Rollout {
        Rollout { stage: StageIndex(0), status: Status::Draft, version: Version(1), stage_entered_at: None, request: None }
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
    /// Ask to move to the next stage; it moves once the plan's approvers have approved (at once
    /// when the asker is an approver, self-approval is allowed and one approval suffices). With
    /// an override reason, blockers are recorded instead of refusing.
    Advance { override_reason: Option<String> },
    /// Approve the waiting request; the last approval needed carries it out.
    Approve,
    /// Turn the waiting request down, with the reason written down.
    Decline { reason: String },
    /// Hold the rollout where it is.
    Pause { reason: Option<String> },
    /// Continue after a pause.
    Resume,
    /// Move the flag down, with the reason written down.
    RollBack { target: RollbackTarget, reason: String },
    /// Ask to sign off the last stage (approved like an advance).
    Complete { override_reason: Option<String> },
}

impl Command {
    pub fn name(&self) -> &'static str {
        match self {
            Command::Start => "start",
            Command::Advance { .. } => "advance",
            Command::Approve => "approve",
            Command::Decline { .. } => "decline",
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
            Command::RollBack { reason, .. } | Command::Decline { reason } => Some(reason),
            Command::Start | Command::Resume | Command::Approve => None,
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
            "approve" => Command::Approve,
            "decline" => Command::Decline { reason: reason.unwrap_or_default() },
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
                return Err(format!(
                    "action: `{other}` is not a command (start, advance, approve, decline, pause, resume, roll_back, complete)"
                ));
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
    #[error("only an approver can approve")]
    NotAnApprover,
    #[error("{0} asked for this advance; the plan needs somebody else to approve it")]
    SelfApproval(String),
    #[error("{0} has approved this advance already")]
    AlreadyApproved(String),
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

/// What `apply` needs besides the state: the plan, the time, what currently blocks leaving
/// the stage (computed by [`super::readiness::blockers`]), and who is acting.
pub struct Context<'a> {
    pub plan: &'a Plan,
    pub now: Timestamp,
    pub blockers: &'a [Blocker],
    pub actor: Actor<'a>,
}

/// Who gives a command, as far as approvals care.
#[derive(Clone, Copy, Debug)]
pub struct Actor<'a> {
    pub name: &'a str,
    /// A person holding the approve permission (machines never approve).
    pub may_approve: bool,
}

impl Actor<'_> {
    /// The guard loop and other automatic actors.
    pub const fn machine(name: &str) -> Actor<'_> {
        Actor { name, may_approve: false }
    }
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
    let mut next = Rollout { request: None, ..state.clone() };
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
            let override_reason = override_reason.as_deref().map(str::trim).filter(|r| !r.is_empty());
            overridden = pass_blockers(cx, override_reason)?;
            let mut request = Request {
                complete: completing,
                by: cx.actor.name.to_string(),
                at: cx.now,
                override_reason: override_reason.map(str::to_string),
                from: state.status,
                approvals: Vec::new(),
            };
            if cx.actor.may_approve && cx.plan.approvals.allow_self_approval {
                request.approvals.push(Approval { by: cx.actor.name.to_string(), at: cx.now });
            }
            settle(&mut next, request, cx);
        }
        Command::Approve => {
            let Some(mut request) = state.request.clone().filter(|_| state.status == Status::AwaitingApproval) else {
                return Err(not_allowed());
            };
            if !cx.actor.may_approve {
                return Err(Refusal::NotAnApprover);
            }
            if request.by == cx.actor.name && !cx.plan.approvals.allow_self_approval {
                return Err(Refusal::SelfApproval(request.by));
            }
            if request.approvals.iter().any(|a| a.by == cx.actor.name) {
                return Err(Refusal::AlreadyApproved(cx.actor.name.to_string()));
            }
            // Blockers are judged again now: what the request's reason pushed past may have
            // changed, and an alert raised meanwhile stops the approval.
            overridden = pass_blockers(cx, request.override_reason.as_deref())?;
            request.approvals.push(Approval { by: cx.actor.name.to_string(), at: cx.now });
            settle(&mut next, request, cx);
        }
        Command::Decline { reason } => {
            let Some(request) = state.request.as_ref().filter(|_| state.status == Status::AwaitingApproval) else {
                return Err(not_allowed());
            };
            if reason.trim().is_empty() {
                return Err(Refusal::ReasonRequired("decline"));
            }
            next.status = request.from;
        }
        Command::Pause { .. } => {
            if !matches!(state.status, Status::Running | Status::AwaitingApproval) {
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
            if !matches!(state.status, Status::Running | Status::AwaitingApproval | Status::Paused | Status::RolledBack) {
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

/// The blockers a command may go past: none without a written reason, and never an open alert,
/// which must be acknowledged first.
fn pass_blockers(cx: &Context<'_>, override_reason: Option<&str>) -> Result<Vec<Blocker>, Refusal> {
    let refuse = || Refusal::Blocked { blockers: cx.blockers.to_vec() };
    if cx.blockers.is_empty() {
        return Ok(Vec::new());
    }
    if cx.blockers.iter().any(|b| matches!(b, Blocker::AlertOpen { .. })) {
        return Err(refuse());
    }
    match override_reason.map(str::trim) {
        Some(r) if !r.is_empty() => Ok(cx.blockers.to_vec()),
        _ => Err(refuse()),
    }
}

/// Carries out `request` when it has the approvals the plan needs, or leaves it waiting.
fn settle(next: &mut Rollout, request: Request, cx: &Context<'_>) {
    if request.approvals.len() < cx.plan.approvals.required.max(1) as usize {
        next.status = Status::AwaitingApproval;
        next.request = Some(request);
    } else if request.complete {
        next.status = Status::Complete;
    } else {
        next.stage = StageIndex(next.stage.0 + 1);
        next.status = Status::Running;
    }
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
        assert_eq!(
            apply(&first, first.version, &Command::Approve, &cx(&plan, &[], ANA)).unwrap_err(),
            Refusal::AlreadyApproved("ana".into())
        );
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
        let rolled =
            apply(&waiting, v, &roll_back(RollbackTarget::Off), &Context { actor: Actor::machine("guard"), ..cx(&plan, &[], OTTO) });
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
}
