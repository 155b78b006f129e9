//! The commands a person may give the rollout from where it stands. Each form names the version
//! it acts on, so two people clicking at once cannot both win; the forms post without
//! JavaScript too.

use crate::api::RunCommand;
use crate::domain::plan::RollbackTarget;
use crate::domain::rollout::Status;
use crate::error::AppError;
use crate::model::ControlRoom;
use leptos::form::ActionForm;
use leptos::prelude::*;

#[component]
pub fn Actions(room: ControlRoom, command: ServerAction<RunCommand>) -> impl IntoView {
    let state = room.state.clone();
    let last = room.plan.last_stage();
    let at_last = state.stage == last;
    let next = room.plan.stage(crate::domain::units::StageIndex(state.stage.0 + 1)).cloned();
    let blocked = !room.blockers.is_empty();
    let id = room.rollout_id;
    let version = state.version.0;

    let outcome = move || {
        command.value().get().and_then(Result::err).map(|e| {
            let text = match &e {
                AppError::Conflict { .. } => "Someone else acted first; the page now shows the current state.".to_string(),
                other => other.to_string(),
            };
            view! { <p class="error" role="alert" data-testid="action-error">{text}</p> }
        })
    };

    // A reason typed for one command must never be reused for the next one by accident.
    let override_form = NodeRef::<leptos::html::Form>::new();
    let rollback_form = NodeRef::<leptos::html::Form>::new();
    Effect::new(move |_| {
        if matches!(command.value().get(), Some(Ok(_))) {
            for form in [override_form, rollback_form] {
                if let Some(form) = form.get_untracked() {
                    form.reset();
                }
            }
        }
    });

    let hidden = move |action: &'static str| {
        view! {
            <input type="hidden" name="rollout_id" value=id.to_string()/>
            <input type="hidden" name="version" value=version.to_string()/>
            <input type="hidden" name="action" value=action/>
        }
    };

    let forward = matches!(state.status, Status::Running | Status::RolledBack).then(|| {
        let (action, label) = if at_last {
            ("complete", "Complete the rollout".to_string())
        } else {
            let next = next.clone().expect("a stage follows");
            ("advance", format!("Advance to {} ({})", next.name, next.flag))
        };
        if blocked {
            view! {
                <ActionForm action=command node_ref=override_form attr:class="action-form override">
                    {hidden(action)}
                    <button type="submit" disabled=true title="Blocked: see what blocks Advance">{label.clone()}</button>
                    <label>
                        "Override with a written reason"
                        <textarea name="reason" required=true rows="2" placeholder="Why it is safe to go on anyway"></textarea>
                    </label>
                    <button type="submit" class="danger" data-testid="override-advance">{format!("Override and {}", label.to_lowercase())}</button>
                </ActionForm>
            }
            .into_any()
        } else {
            view! {
                <ActionForm action=command attr:class="action-form">
                    {hidden(action)}
                    <button type="submit" class="primary" data-testid="advance">{label}</button>
                </ActionForm>
            }
            .into_any()
        }
    });

    let start = (state.status == Status::Draft).then(|| {
        view! {
            <ActionForm action=command attr:class="action-form">
                {hidden("start")}
                <button type="submit" class="primary" data-testid="start">"Start the rollout (begin stage 0)"</button>
            </ActionForm>
        }
    });

    let pause_or_resume = match state.status {
        Status::Running => Some(view! {
            <ActionForm action=command attr:class="action-form">
                {hidden("pause")}
                <button type="submit" data-testid="pause">"Pause"</button>
            </ActionForm>
        }.into_any()),
        Status::Paused => Some(view! {
            <ActionForm action=command attr:class="action-form">
                {hidden("resume")}
                <button type="submit" class="primary" data-testid="resume">"Resume"</button>
            </ActionForm>
        }.into_any()),
        _ => None,
    };

    let can_roll_back =
        state.stage.0 > 0 && matches!(state.status, Status::Running | Status::Paused | Status::RolledBack);
    let roll_back = can_roll_back.then(|| {
        view! {
            <ActionForm action=command node_ref=rollback_form attr:class="action-form rollback">
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
                    <textarea name="reason" required=true rows="2" placeholder="What went wrong"></textarea>
                </label>
                <button type="submit" class="danger" data-testid="roll-back">"Roll back"</button>
            </ActionForm>
        }
    });

    let finished = (state.status == Status::Complete).then(|| view! { <p>"The rollout is complete."</p> });

    view! {
        <section class="card actions" aria-labelledby="actions-title">
            <h2 id="actions-title">"Actions"</h2>
            {outcome}
            {start}
            {forward}
            {pause_or_resume}
            {roll_back}
            {finished}
        </section>
    }
}
