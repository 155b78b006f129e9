//! The frozen baseline: the control arm's numbers that every gate and guardrail compares
//! against, who froze them and from which window. An approver captures it here — or captures it
//! again — and sees the numbers it will freeze before freezing them.
//!
//! Plain HTML forms, no script: looking is a GET of the control room with `?baseline_hours=N`
//! (the snapshot then carries the numbers, [`crate::model::BaselineLook`]), freezing a POST to
//! `/rollouts/{id}/baseline` that comes back here. A rare action; a client for it in the WASM
//! would cost every page load some 15 kB.

use crate::components::actions::denied;
use crate::domain::access::{Permission, Principal};
use crate::domain::stats::Summary;
use crate::format;
use crate::model::{BaselineLook, BaselineWindow};
use leptos::either::Either;
use leptos::prelude::*;

/// The windows a baseline can be captured over, in hours.
const WINDOWS: [(u32, &str); 4] = [(1, "the last hour"), (6, "the last 6 hours"), (24, "the last 24 hours"), (168, "the last 7 days")];

#[component]
pub fn BaselineCard(
    rollout_id: i64,
    baseline: Option<Summary>,
    window: Option<BaselineWindow>,
    /// The numbers asked for, if any.
    look: Option<BaselineLook>,
    /// A freeze was refused because uploads arrived in the window since it was looked at.
    moved: bool,
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
                {format!(
                    " Frozen by {} at {}, from the control uploads of {} to {}.",
                    w.captured_by,
                    format::utc_minute(w.captured_at),
                    format::utc_minute(w.from),
                    format::utc_minute(w.to)
                )}
            </p>
        }),
        _ => Either::Right(view! {
            <p class="muted" data-testid="baseline-current">
                "No baseline yet: gates compare against the live control arm. Stage 0 asks for one, frozen while the flag is off."
            </p>
        }),
    };
    let asked = look.as_ref().map_or(1, |l| l.hours);
    let options =
        WINDOWS.map(|(hours, label)| view! { <option value=hours.to_string() selected=hours == asked>{label}</option> }).collect_view();
    let verb = if replaces.is_some() { "Capture again" } else { "Capture the baseline" };
    let proposed = look.map(|look| match (look.preview, look.refusal) {
        (Some(p), _) => Either::Left(view! {
            <div class="baseline-preview" data-testid="baseline-preview">
                {moved.then(|| view! { <p class="warning">"Uploads arrived in that window since you looked: these are its numbers now."</p> })}
                <p>
                    {format!("The control uploads of {} to {}: ", format::utc_minute(p.from), format::utc_minute(p.to))}
                    <strong>{format::baseline_numbers(&p.control)}</strong>
                </p>
                {replaces.map(|at| view! {
                    <p class="warning">
                        {format!(
                            "This replaces the baseline frozen at {}: from then on every gate and guardrail compares against the new numbers.",
                            format::utc_minute(at)
                        )}
                    </p>
                })}
                <form method="post" action=format!("/rollouts/{rollout_id}/baseline") class="action-form">
                    <input type="hidden" name="hours" value=look.hours.to_string()/>
                    <input type="hidden" name="to" value=p.to.millis().to_string()/>
                    <input type="hidden" name="count" value=p.control.count.to_string()/>
                    <button type="submit" class="primary" data-testid="freeze-baseline">"Freeze these numbers"</button>
                    " " <a href=format!("/rollouts/{rollout_id}")>"Cancel"</a>
                </form>
            </div>
        }),
        (None, refusal) => Either::Right(view! { <p class="error" role="alert">{refusal}</p> }),
    });
    view! {
        <section class="card baseline" id="baseline" aria-labelledby="baseline-title" data-testid="baseline-card">
            <h2 id="baseline-title">"Baseline"</h2>
            {current}
            <form method="get" action=format!("/rollouts/{rollout_id}") class="action-form inline-form">
                <label>
                    {verb} " from " <select name="baseline_hours" disabled=no.is_some()>{options}</select>
                </label>
                <button type="submit" data-testid="preview-baseline" disabled=no.is_some() title=no>"Show the numbers"</button>
            </form>
            {proposed}
        </section>
    }
}
