//! The frozen baseline: the control arm's numbers that every gate and guardrail compares
//! against, who froze them and from which window. An approver captures it here — or captures it
//! again — and sees the numbers it will freeze before freezing them.

use crate::api::CaptureBaseline;
use crate::components::actions::denied;
use crate::components::local_time::LocalTime;
use crate::domain::access::{Permission, Principal};
use crate::domain::stats::Summary;
use crate::format;
use crate::model::BaselineWindow;
use leptos::either::Either;
use leptos::form::ActionForm;
use leptos::prelude::*;

/// The windows a baseline can be captured over, in hours.
const WINDOWS: [(u32, &str); 4] = [(1, "the last hour"), (6, "the last 6 hours"), (24, "the last 24 hours"), (168, "the last 7 days")];

#[component]
pub fn BaselineCard(
    rollout_id: i64,
    baseline: Option<Summary>,
    window: Option<BaselineWindow>,
    capture: ServerAction<CaptureBaseline>,
    you: Principal,
) -> impl IntoView {
    let no = denied(&you, Permission::CaptureBaseline);
    let replaces = window.as_ref().map(|w| w.captured_at);
    // `Either`, not `into_any()`: every type-erased view keeps its async hydration code in the
    // WASM, used or not.
    let current = match (baseline, window) {
        (Some(b), Some(w)) => Either::Left(view! {
            <p data-testid="baseline-current">
                <strong>{format::baseline_numbers(&b)}</strong>
                " Frozen by " {w.captured_by} " at " <LocalTime at=w.captured_at/> ", from the control uploads of "
                <LocalTime at=w.from/> " to " <LocalTime at=w.to/> "."
            </p>
        }),
        _ => Either::Right(view! {
            <p class="muted" data-testid="baseline-current">
                "No baseline yet: gates compare against the live control arm. Stage 0 asks for one, frozen while the flag is off."
            </p>
        }),
    };
    let options =
        WINDOWS.map(|(hours, label)| view! { <option value=hours.to_string() selected=hours == 1>{label}</option> }).collect_view();
    let verb = if replaces.is_some() { "Capture again" } else { "Capture the baseline" };
    let error = |message: String| view! { <p class="error" role="alert">{message}</p> };
    // The action's last answer: numbers shown (to freeze), or a refusal. Once frozen, the
    // current baseline above says so.
    let proposed = move || {
        capture.value().get().filter(|answer| !matches!(answer, Ok(p) if p.frozen)).map(|answer| match answer {
            Ok(p) => {
                let warning = replaces.map(|at| {
                    view! {
                        <p class="warning">
                            "This replaces the baseline frozen at " <LocalTime at/>
                            ": from then on every gate and guardrail compares against the new numbers."
                        </p>
                    }
                });
                Either::Left(view! {
                    <div class="baseline-preview" data-testid="baseline-preview">
                        <p>
                            "The control uploads of " <LocalTime at=p.from/> " to " <LocalTime at=p.to/> ": "
                            <strong>{format::baseline_numbers(&p.control)}</strong>
                        </p>
                        {warning}
                        <ActionForm action=capture attr:class="action-form">
                            <input type="hidden" name="rollout_id" value=rollout_id.to_string()/>
                            <input type="hidden" name="hours" value=((p.to.millis() - p.from.millis()) / 3_600_000).to_string()/>
                            <input type="hidden" name="to" value=p.to.millis().to_string()/>
                            <input type="hidden" name="count" value=p.control.count.to_string()/>
                            <button type="submit" class="primary" data-testid="freeze-baseline">"Freeze these numbers"</button>
                        </ActionForm>
                    </div>
                })
            }
            Err(e) => Either::Right(error(e.to_string())),
        })
    };
    view! {
        <section class="card baseline" aria-labelledby="baseline-title" data-testid="baseline-card">
            <h2 id="baseline-title">"Baseline"</h2>
            {current}
            <ActionForm action=capture attr:class="action-form inline-form">
                <input type="hidden" name="rollout_id" value=rollout_id.to_string()/>
                <label>
                    {verb} " from " <select name="hours" disabled=no.is_some()>{options}</select>
                </label>
                <button type="submit" data-testid="preview-baseline" disabled=no.is_some() title=no>"Show the numbers"</button>
            </ActionForm>
            {proposed}
        </section>
    }
}
