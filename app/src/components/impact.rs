//! The change's impact against the plan's expected improvements: for each, the reference's and
//! the treatment's figures, the reduction with its anytime-valid interval, what was expected, and
//! met / not met / not yet known.

use crate::domain::impact::{Impact, Measure, Outcome};
use crate::domain::units::thousands;
use leptos::prelude::*;

fn figure(value: Option<f64>, unit: &str) -> String {
    match (value, unit) {
        (None, _) => "—".into(),
        (Some(v), "%") => format!("{v:.2}%"),
        (Some(v), unit) => format!("{v:.0} {unit}"),
    }
}

/// "−85% (−83 to −87)": a reduction shown as the change it is; an open end as "…".
fn change(m: &Measure) -> String {
    let Some(observed) = m.reduction_pct else { return "—".into() };
    let end = |v: Option<f64>| v.map_or_else(|| "…".to_string(), |v| format!("{:.0}", -v));
    format!("{:+.0}% ({} to {})", -observed, end(m.interval.0), end(m.interval.1)).replace('-', "−")
}

fn expected(m: &Measure) -> String {
    let (near, far) = m.expected;
    if m.unit == "×" {
        format!("×{near:.0}–{far:.0}")
    } else if (near - far).abs() < 1e-9 {
        format!("−{near:.0}%")
    } else {
        format!("−{near:.0}–{far:.0}%")
    }
}

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
                    <td>{figure(m.reference, &m.unit)}</td>
                    <td>{figure(m.treatment, &m.unit)}</td>
                    <td>{change(m)}</td>
                    <td>{expected(m)}</td>
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
