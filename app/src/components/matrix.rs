//! The end-to-end matrix as a heat map: a row per file type and size class, a column per
//! provider; each cell coloured by its verdict, with its uploads against the minimum, its
//! success rate with the interval, and its p95 latency. Empty cells say so.

use crate::domain::gates::Verdict;
use crate::domain::matrix::{Cell, MatrixView};
use crate::domain::units::thousands;
use leptos::prelude::*;

fn cell_view(cell: Option<&Cell>, min: u32) -> AnyView {
    let Some(cell) = cell else { return view! { <td>"—"</td> }.into_any() };
    let class = match cell.verdict {
        Verdict::Pass => "matrix-cell pass",
        Verdict::Fail => "matrix-cell fail",
        Verdict::Inconclusive if cell.uploads == 0 => "matrix-cell empty",
        Verdict::Inconclusive => "matrix-cell inconclusive",
    };
    let uploads = format!("{} of {min}", thousands(cell.uploads));
    let detail = crate::format::matrix_cell_detail(cell);
    let title = format!("{}: {} — {}", cell.name(), cell.verdict.label(), detail);
    view! {
        <td class=class title=title data-testid="matrix-cell" data-verdict=cell.verdict.label()>
            <span class="matrix-uploads">{uploads}</span>
            <span class="matrix-detail">{detail}</span>
        </td>
    }
    .into_any()
}

#[component]
pub fn EndToEndMatrix(matrix: MatrixView) -> impl IntoView {
    let passing = matrix.cells.iter().filter(|c| c.verdict == Verdict::Pass).count();
    let header = matrix.providers.iter().map(|p| view! { <th scope="col">{p.clone()}</th> }).collect_view();
    let mut rows = Vec::new();
    for file_type in &matrix.file_types {
        for size in &matrix.sizes_mb {
            let cells = matrix.providers.iter().map(|p| cell_view(matrix.cell(file_type, *size, p), matrix.min_per_cell)).collect_view();
            rows.push(view! {
                <tr>
                    <th scope="row">{format!("{file_type} · ≤ {size} MB")}</th>
                    {cells}
                </tr>
            });
        }
    }
    let outside = (matrix.outside > 0)
        .then(|| view! { <p class="muted">{format!("{} treatment uploads of combinations the plan does not list.", thousands(matrix.outside))}</p> });
    view! {
        <section class="card" aria-labelledby="matrix-title" data-testid="matrix">
            <h2 id="matrix-title">"End-to-end matrix"</h2>
            <p data-testid="matrix-summary">
                {format!("{passing} of {} cells pass", matrix.cells.len())}
                <span class="muted">
                    {format!(
                        " — each needs {} treatment uploads in this stage with its failures within {:.1}%, and fails only when they are proven above it",
                        matrix.min_per_cell,
                        100.0 - matrix.success_min
                    )}
                </span>
            </p>
            <div class="table-scroll">
                <table class="matrix">
                    <thead><tr><th scope="col">"File type · size"</th>{header}</tr></thead>
                    <tbody>{rows}</tbody>
                </table>
            </div>
            {outside}
        </section>
    }
}
