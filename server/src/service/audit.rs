//! The audit entry an accepted command leaves: a sentence for people and the evidence for the
//! record.

use crate::store::{AuditRecord, StoredRollout};
use app::domain::gates::{Gate, Reference};
use app::domain::rollout::{Command, Rollout, Status, Transition, served_flag};
use app::domain::webhook::Event;

/// The audit entry for an accepted command: a sentence for people and the evidence for the
/// record — with the gates as judged (each rate's receipt inside) and the reference they were
/// judged against, so that `rampart explain` can recompute them.
pub(super) fn audit_record(
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
