//! The plan's stages as a progress track, the current one marked.

use crate::domain::plan::Plan;
use crate::domain::rollout::{Rollout, Status};
use leptos::prelude::*;

#[component]
pub fn StageTrack(plan: Plan, state: Rollout) -> impl IntoView {
    let current = state.stage.get();
    let steps = plan
        .stages
        .iter()
        .enumerate()
        .map(|(i, stage)| {
            let phase = match (i.cmp(&current), state.status) {
                (std::cmp::Ordering::Equal, Status::Complete) => "done",
                (std::cmp::Ordering::Equal, Status::Draft) => "upcoming current",
                (std::cmp::Ordering::Equal, _) => "current",
                (std::cmp::Ordering::Less, _) => "done",
                (std::cmp::Ordering::Greater, _) => "upcoming",
            };
            let is_current = i == current;
            view! {
                <li class=format!("step {phase}") aria-current=is_current.then_some("step") data-testid="stage-step">
                    <span class="step-index">{i}</span>
                    <span class="step-flag">{if stage.flag.enabled { format!("{}", stage.flag.percentage) } else { "off".into() }}</span>
                    <span class="step-name">{stage.name.clone()}</span>
                    <span class="step-soak muted">{format!("soak {}", stage.soak)}</span>
                </li>
            }
        })
        .collect_view();
    view! {
        <nav aria-label="Stages">
            <ol class="stage-track">{steps}</ol>
        </nav>
    }
}
