//! The current stage's gates: each criterion's observed value, anytime-valid interval, threshold, sample
//! against the minimum, and verdict, in words and colour.

use crate::domain::gates::{Gate, Verdict};
use crate::format::{gate_interval, gate_point, gate_threshold, versus_control};
use leptos::prelude::*;

#[component]
pub fn Gates(gates: Vec<Gate>) -> impl IntoView {
    let rows = gates
        .into_iter()
        .map(|gate| {
            let (observed, interval) = (gate_point(&gate), gate_interval(&gate));
            let verdict_class = match gate.verdict {
                Verdict::Pass => "verdict pass",
                Verdict::Fail => "verdict fail",
                Verdict::Inconclusive => "verdict inconclusive",
            };
            view! {
                <tr data-testid="gate" data-criterion=format!("{:?}", gate.criterion).to_lowercase()>
                    <th scope="row">{gate.criterion.label()}</th>
                    <td>{gate_threshold(&gate)}</td>
                    <td>{observed} {interval.map(|i| view! { <span class="muted interval">{format!(" (97.5% anytime: {i})")}</span> })}</td>
                    <td>{format!("{} / {}", gate.sample, gate.min_sample)}</td>
                    <td data-testid="versus-control">{versus_control(&gate)}</td>
                    <td><span class=verdict_class>{gate.verdict.label()}</span></td>
                </tr>
                <tr class="gate-explanation"><td colspan="6" class="muted">{gate.explanation}</td></tr>
            }
        })
        .collect_view();
    view! {
        <table class="criteria" data-testid="criteria">
            <thead>
                <tr>
                    <th scope="col">"Criterion"</th>
                    <th scope="col">"Threshold"</th>
                    <th scope="col">"Observed (treatment)"</th>
                    <th scope="col">"Sample / min"</th>
                    <th scope="col" title="Treatment minus control, with a 95% interval that holds at every look">"vs control"</th>
                    <th scope="col">"Verdict"</th>
                </tr>
            </thead>
            <tbody>{rows}</tbody>
        </table>
    }
}
