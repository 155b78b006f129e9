//! The current stage's gates: each criterion's observed value, anytime-valid interval, threshold, sample
//! against the minimum, and verdict, in words and colour.

use crate::domain::gates::{Criterion, Gate, Verdict};
use leptos::prelude::*;

fn value(criterion: Criterion, v: f64) -> String {
    match criterion {
        Criterion::MinEvents => format!("{v:.0}"),
        Criterion::SuccessRate | Criterion::ErrorRate | Criterion::SampleRatio => format!("{v:.2}%"),
        Criterion::LatencyP95 | Criterion::Memory => format!("{v:.0}% of baseline"),
        Criterion::FailuresVsControl | Criterion::LatencyVsControl => format!("{v:+.2} pts").replace('-', "−"),
        Criterion::Matrix => format!("{v:.0} cells"),
        Criterion::Performance => format!("{v:.0} met"),
    }
}

fn threshold(gate: &Gate) -> String {
    let v = value(gate.criterion, gate.threshold);
    match gate.criterion {
        Criterion::SuccessRate | Criterion::MinEvents => format!("≥ {v}"),
        Criterion::SampleRatio => format!("{}% treatment", gate.threshold),
        Criterion::Matrix => format!("all {v}"),
        Criterion::Performance => format!("all {v}"),
        _ => format!("≤ {v}"),
    }
}

/// "+0.12 pts (−0.20 to +0.44)", or a dash where there is no control arm to compare with.
fn versus_control(gate: &Gate) -> String {
    gate.versus_control
        .map_or_else(|| "—".to_string(), |d| format!("{:+.2} pts ({:+.2} to {:+.2})", d.estimate, d.lo, d.hi).replace('-', "−"))
}

#[component]
pub fn Gates(gates: Vec<Gate>) -> impl IntoView {
    let rows = gates
        .into_iter()
        .map(|gate| {
            let observed = gate.observed.map_or_else(|| "—".to_string(), |o| value(gate.criterion, o));
            let interval = gate.interval.map(|(lo, hi)| format!("{} – {}", value(gate.criterion, lo), value(gate.criterion, hi)));
            let verdict_class = match gate.verdict {
                Verdict::Pass => "verdict pass",
                Verdict::Fail => "verdict fail",
                Verdict::Inconclusive => "verdict inconclusive",
            };
            view! {
                <tr data-testid="gate" data-criterion=format!("{:?}", gate.criterion).to_lowercase()>
                    <th scope="row">{gate.criterion.label()}</th>
                    <td>{threshold(&gate)}</td>
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
