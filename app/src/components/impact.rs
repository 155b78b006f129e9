//! The change's impact against the plan's expected improvements: for each, the reference's and
//! the treatment's figures, the reduction with its anytime-valid interval, what was expected, and
//! met / not met / not yet known.

use crate::domain::impact::{Impact, Outcome};
use crate::domain::units::thousands;
use crate::format::{impact_change, impact_expected, impact_figure};
use leptos::prelude::*;

#[component]
pub fn ImpactTable(impact: Impact) -> impl IntoView {
    let rows = impact
        .measures
        .iter()
        .map(|m| {
            let class = match m.outcome {
                Outcome::Met => "verdict pass",
                Outcome::NotMet => "verdict fail",
                Outcome::NotYetKnown | Outcome::NotMeasured => "verdict inconclusive",
            };
            view! {
                <tr data-testid="impact-row">
                    <th scope="row">{m.what.clone()}</th>
                    <td>{impact_figure(m.reference, &m.unit)}</td>
                    <td>{impact_figure(m.treatment, &m.unit)}</td>
                    <td>{impact_change(m)}</td>
                    <td>{impact_expected(m)}</td>
                    <td><span class=class>{m.outcome.label()}</span></td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <section class="card" aria-labelledby="impact-title" data-testid="impact">
            <h2 id="impact-title">"Impact against the expected improvements"</h2>
            <p class="muted">
                {format!(
                    "This stage's {} treatment uploads against the {}; each change with its anytime interval (each end wrong with chance at most 2.5%). Met when the whole interval clears the expected range's near end.",
                    thousands(impact.treatment_uploads),
                    impact.reference
                )}
            </p>
            <div class="table-scroll">
                <table>
                    <thead><tr><th scope="col">"Measure"</th><th scope="col">"Reference"</th><th scope="col">"Treatment"</th><th scope="col">"Change"</th><th scope="col">"Expected"</th><th scope="col">"Outcome"</th></tr></thead>
                    <tbody>{rows}</tbody>
                </table>
            </div>
        </section>
    }
}
