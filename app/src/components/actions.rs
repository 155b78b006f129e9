//! The commands a person may give the rollout from where it stands. Each form names the version
//! it acts on, so two people clicking at once cannot both win. Rendered on the server: the forms
//! post to the `run_command` server function, without JavaScript too; with it, the page's
//! `Live` island sends them in place, asks to confirm where a button's `data-confirm` says, and
//! shows a refusal in the card's `data-error` slot.

use crate::api::RunCommand;
use crate::components::local_time::LocalTime;
use crate::domain::access::{Denied, Permission, Principal, check};
use crate::domain::plan::RollbackTarget;
use crate::domain::rollout::{Actor, Command, Context, Status, apply};
use crate::format;
use crate::model::ControlRoom;
use leptos::form::ActionForm;
use leptos::prelude::*;

/// Why `you` may not do `permission`, for a disabled control's tooltip; `None` when allowed.
pub fn denied(you: &Principal, permission: Permission) -> Option<String> {
    match check(you, permission) {
        Ok(()) => None,
        Err(Denied::Forbidden(why)) => Some(why),
        Err(Denied::Unauthenticated) => Some("sign in first".to_string()),
    }
}

#[component]
pub fn Actions(
    room: ControlRoom,
    command: ServerAction<RunCommand>,
    you: Principal,
    /// What the last command was refused with, when the page came back from a form sent
    /// without JavaScript.
    refusal: Option<String>,
) -> impl IntoView {
    let state = room.state.clone();
    let last = room.plan.last_stage();
    let at_last = state.stage == last;
    let next = room.plan.stage(crate::domain::units::StageIndex(state.stage.0 + 1)).cloned();
    let blocked = !room.blockers.is_empty();
    let id = room.rollout_id;
    let version = state.version.0;

    let hidden = move |action: &'static str| {
        view! {
            <input type="hidden" name="rollout_id" value=id.to_string()/>
            <input type="hidden" name="version" value=version.to_string()/>
            <input type="hidden" name="action" value=action/>
        }
    };

    // With self-approval and one approval, an approver's click advances at once; otherwise it
    // asks, and the plan's approvers decide.
    let approvals = room.plan.approvals.clone();
    let one_click = approvals.allow_self_approval && approvals.required <= 1 && you.may(Permission::Approve);
    let forward = matches!(state.status, Status::Running | Status::RolledBack).then(|| {
        let (action, target) = if at_last {
            ("complete", "complete the rollout".to_string())
        } else {
            let next = next.clone().expect("a stage follows");
            ("advance", format!("advance to {} ({})", next.name, next.flag))
        };
        let label = if one_click { format::capitalized(&target) } else { format!("Ask to {target}") };
        if blocked {
            let no = denied(&you, Permission::Override);
            view! {
                <ActionForm action=command attr:class="action-form override">
                    {hidden(action)}
                    <button type="submit" disabled=true title="Blocked: see what blocks Advance">{label.clone()}</button>
                    <label>
                        "Override with a written reason"
                        <textarea name="reason" required=true rows="2" placeholder="Why it is safe to go on anyway" disabled=no.is_some()></textarea>
                    </label>
                    <button
                        type="submit"
                        class="danger"
                        data-testid="override-advance"
                        disabled=no.is_some()
                        title=no
                        data-confirm="Go on past the blockers? Your reason goes into the audit trail."
                    >
                        {format!("Override and {}", if one_click { target.clone() } else { format!("ask to {target}") })}
                    </button>
                </ActionForm>
            }
            .into_any()
        } else {
            let no = denied(&you, Permission::RequestAdvance);
            view! {
                <ActionForm action=command attr:class="action-form">
                    {hidden(action)}
                    <button type="submit" class="primary" data-testid="advance" disabled=no.is_some() title=no>{label}</button>
                </ActionForm>
            }
            .into_any()
        }
    });

    let approval = state.request.clone().filter(|_| state.status == Status::AwaitingApproval).map(|request| {
        let me = you.actor();
        let target = if request.complete {
            "completing the rollout".to_string()
        } else {
            next.as_ref().map_or_else(String::new, |n| format!("advancing to {} ({})", n.name, n.flag))
        };
        // The state machine's own answer, so the tooltip says what the server would.
        let cx = Context {
            plan: &room.plan,
            now: room.now,
            blockers: &room.blockers,
            actor: Actor { name: &me, may_approve: you.may(Permission::Approve) },
        };
        let no_approve = denied(&you, Permission::Approve)
            .or_else(|| apply(&state, state.version, &Command::Approve, &cx).err().map(|refusal| format::capitalized(&refusal.to_string())));
        let no_decline = denied(&you, Permission::Approve);
        let approved_by = request.approvals.iter().map(|a| a.by.clone()).collect::<Vec<_>>().join(", ");
        view! {
            <div class="approval" data-testid="approval">
                <p>
                    <strong>{format!("{} asked for {target}", request.by)}</strong>
                    " "
                    <LocalTime at=request.at/>
                    {format!(" — {} so far", request.tally(&room.plan))}
                    {(!approved_by.is_empty()).then(|| format!(" ({approved_by})"))}
                </p>
                {request.override_reason.clone().map(|r| view! { <p class="override-reason">"Override reason: " <q>{r}</q></p> })}
                <ActionForm action=command attr:class="action-form">
                    {hidden("approve")}
                    <button type="submit" class="primary" data-testid="approve" disabled=no_approve.is_some() title=no_approve>
                        {format!("Approve {target}")}
                    </button>
                </ActionForm>
                <ActionForm action=command attr:class="action-form">
                    {hidden("decline")}
                    <label>
                        "Reason to decline"
                        <textarea name="reason" required=true rows="2" placeholder="What has to happen first" disabled=no_decline.is_some()></textarea>
                    </label>
                    <button type="submit" data-testid="decline" disabled=no_decline.is_some() title=no_decline>"Decline"</button>
                </ActionForm>
            </div>
        }
    });

    let start = (state.status == Status::Draft).then(|| {
        let no = denied(&you, Permission::Start);
        view! {
            <ActionForm action=command attr:class="action-form">
                {hidden("start")}
                <button type="submit" class="primary" data-testid="start" disabled=no.is_some() title=no>"Start the rollout (begin stage 0)"</button>
            </ActionForm>
        }
    });

    let (no_pause, no_resume) = (denied(&you, Permission::Pause), denied(&you, Permission::Resume));
    let pause_or_resume = match state.status {
        Status::Running | Status::AwaitingApproval => Some(view! {
            <ActionForm action=command attr:class="action-form">
                {hidden("pause")}
                <button type="submit" data-testid="pause" disabled=no_pause.is_some() title=no_pause>"Pause"</button>
            </ActionForm>
        }.into_any()),
        Status::Paused => Some(view! {
            <ActionForm action=command attr:class="action-form">
                {hidden("resume")}
                <button type="submit" class="primary" data-testid="resume" disabled=no_resume.is_some() title=no_resume>"Resume"</button>
            </ActionForm>
        }.into_any()),
        _ => None,
    };

    let can_roll_back =
        state.stage.0 > 0 && matches!(state.status, Status::Running | Status::AwaitingApproval | Status::Paused | Status::RolledBack);
    let no_roll_back = denied(&you, Permission::RollBack);
    let roll_back = can_roll_back.then(|| {
        view! {
            <ActionForm action=command attr:class="action-form rollback">
                {hidden("roll_back")}
                <label>
                    "Roll back to"
                    <select name="target">
                        <option value="off" selected=room.plan.guardrails.rollback_target == RollbackTarget::Off>"Off (stage 0)"</option>
                        <option value="previous" selected=room.plan.guardrails.rollback_target == RollbackTarget::Previous>"The previous stage"</option>
                    </select>
                </label>
                <label>
                    "Reason"
                    <textarea name="reason" required=true rows="2" placeholder="What went wrong" disabled=no_roll_back.is_some()></textarea>
                </label>
                <button
                    type="submit"
                    class="danger"
                    data-testid="roll-back"
                    disabled=no_roll_back.is_some()
                    title=no_roll_back.clone()
                    data-confirm="Roll the flag back now? Clients are served the change within a second."
                >
                    "Roll back"
                </button>
            </ActionForm>
        }
    });

    let finished = (state.status == Status::Complete).then(|| view! { <p>"The rollout is complete."</p> });
    let read_only = match &you {
        Principal::User { role, .. } if !you.may(Permission::Pause) => {
            Some(format!("You are signed in as a {role}: you can follow everything here, but the actions need an operator or approver."))
        }
        Principal::User { .. } if !you.may(Permission::Approve) => {
            Some("You can tick checklists, pause and ask to advance; approving, resuming and rolling back need an approver.".to_string())
        }
        _ => None,
    }
    .map(|text| view! { <p class="muted" data-testid="role-note">{text}</p> });

    view! {
        <section class="card actions" aria-labelledby="actions-title">
            <h2 id="actions-title">"Actions"</h2>
            {read_only}
            // Filled by the page's `Live` island with a refusal ("someone else acted first").
            <p class="error" role="alert" data-testid="action-error" data-error hidden=refusal.is_none()>{refusal.clone()}</p>
            {start}
            {approval}
            {forward}
            {pause_or_resume}
            {roll_back}
            {finished}
        </section>
    }
}
