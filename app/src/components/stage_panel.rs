//! The current stage: its soak clock, success criteria, required evidence, and what blocks
//! leaving it.

use crate::components::gates::Gates;
use crate::components::local_time::LocalTime;
use crate::domain::blocker::Blocker;
use crate::domain::gates::Gate;
use crate::domain::plan::Stage;
use crate::domain::rollout::{Rollout, Status};
use crate::domain::stats::Summary;
use crate::domain::units::Timestamp;
use crate::format;
use leptos::prelude::*;

#[component]
pub fn StagePanel(
    stage: Stage,
    state: Rollout,
    gates: Vec<Gate>,
    blockers: Vec<Blocker>,
    baseline: Option<Summary>,
    now: Timestamp,
) -> impl IntoView {
    let soak = match (state.status, state.stage_entered_at) {
        (Status::Draft, _) | (_, None) => format!("Soak {} starts when the rollout starts.", format::duration(stage.soak)).into_any(),
        (_, Some(entered)) => {
            let elapsed = now.since(entered);
            let text = format!("In this stage for {} of {} soak (since ", format::duration(elapsed), format::duration(stage.soak));
            view! { {text} <LocalTime at=entered/> ")." }.into_any()
        }
    };
    let criteria = (!gates.is_empty()).then(|| view! { <Gates gates/> });
    let baseline = match baseline {
        Some(b) => format!("Baseline (frozen): {}", format::baseline_numbers(&b)),
        None => "No baseline recorded yet: gates compare against the live control arm.".to_string(),
    };
    let mut requirements = Vec::new();
    if stage.requires_baseline {
        requirements.push("Baseline recorded with the flag off".to_string());
    }
    for suite in &stage.test_suites {
        requirements.push(format!("{} tests: all {} must pass (reported by CI)", suite.name, suite.tests));
    }
    if stage.requires_matrix {
        requirements.push("Every file type × size × provider cell working".to_string());
    }
    if stage.requires_performance_validated {
        requirements.push("Expected performance improvements validated".to_string());
    }
    let requirements = (!requirements.is_empty()).then(|| {
        view! {
            <h3>"Also required"</h3>
            <ul class="requirements">{requirements.into_iter().map(|r| view! { <li>{r}</li> }).collect_view()}</ul>
        }
    });
    let blocking = (!blockers.is_empty() && !matches!(state.status, Status::Draft | Status::Complete)).then(|| {
        view! {
            <div class="blockers" data-testid="blockers">
                <h3>"What blocks Advance"</h3>
                <ul>{blockers.iter().map(|b| view! { <li>{b.to_string()}</li> }).collect_view()}</ul>
            </div>
        }
    });
    view! {
        <section class="card stage-panel" aria-labelledby="stage-title">
            <h2 id="stage-title">{format!("Stage {}: {}", state.stage.0, stage.name)}</h2>
            <p class="muted">{stage.summary.clone()}</p>
            <p data-testid="soak">{soak}</p>
            <p class="muted" data-testid="baseline">{baseline}</p>
            {criteria}
            {requirements}
            {blocking}
        </section>
    }
}
