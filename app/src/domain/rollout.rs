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
mod tests;
