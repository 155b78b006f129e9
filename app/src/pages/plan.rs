//! The plan view: the stages and criteria of the rollout's plan, and a checker that validates
//! a plan file pasted into it, with each problem at its line or field.

use crate::api::{CheckPlan, get_control_room};
use crate::domain::plan::Plan;
use crate::format;
use leptos::form::ActionForm;
use leptos::prelude::*;
use leptos_router::hooks::use_params_map;

#[component]
pub fn PlanPage() -> impl IntoView {
    let params = use_params_map();
    let rollout_id = move || params.read().get("id").and_then(|id| id.parse::<i64>().ok());
    let room = Resource::new(rollout_id, get_control_room);
    let check = ServerAction::<CheckPlan>::new();
    let verdict = move || {
        check.value().get().map(|result| match result {
            Ok(plan) => view! {
                <div class="issued" role="status" data-testid="plan-valid">
                    <p>{format!("Valid: “{}”, {} stages, flag {}.", plan.name, plan.stages.len(), plan.flag.key)}</p>
                    <Stages plan/>
                </div>
            }
            .into_any(),
            Err(e) => {
                let text = match e {
                    crate::error::AppError::Invalid { message, .. } => message,
                    other => other.to_string(),
                };
                let lines: Vec<String> = text.lines().map(str::to_string).collect();
                view! {
                    <div class="error" role="alert" data-testid="plan-errors">
                        <p>"The plan is invalid:"</p>
                        <ul>{lines.into_iter().map(|l| view! { <li><code>{l}</code></li> }).collect_view()}</ul>
                    </div>
                }
                .into_any()
            }
        })
    };
    view! {
        <Suspense fallback=|| view! { <p class="notice">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match room.await {
                    Ok(room) => view! {
                        <h1>{format!("Plan: {}", room.plan.name)}</h1>
                        <p class="muted">"Plan " <code>{room.plan.key.clone()}</code> " · flag " <code>{room.plan.flag.key.clone()}</code></p>
                        <section class="card"><Stages plan=room.plan.clone()/></section>
                    }
                    .into_any(),
                    Err(e) => view! { <p class="notice error" role="alert">{e.to_string()}</p> }.into_any(),
                }
            })}
        </Suspense>
        <section class="card" aria-labelledby="check-title">
            <h2 id="check-title">"Check a plan file"</h2>
            <p class="muted">"Paste a plan (TOML). Nothing is saved; problems are listed with their line or field. The same check runs as " <code>"rampart plan check FILE"</code> "."</p>
            <ActionForm action=check attr:class="action-form">
                <label>"Plan file" <textarea name="source" rows="12" required=true spellcheck="false" class="code"></textarea></label>
                <button type="submit" class="primary">"Check"</button>
            </ActionForm>
            {verdict}
        </section>
    }
}

/// The stages of a plan as a table: flag, soak, criteria, what each requires.
#[component]
fn Stages(plan: Plan) -> impl IntoView {
    let rows = plan
        .stages
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let criteria = s.criteria.as_ref().map_or_else(
                || "—".to_string(),
                |c| {
                    format!(
                        "success ≥ {}%, errors ≤ {}%, p95 ≤ {}% of baseline, ≥ {} uploads",
                        c.success_rate_min.get(),
                        c.error_rate_max.get(),
                        c.latency_max.get(),
                        format::count(u64::from(c.min_events))
                    )
                },
            );
            let mut requires = Vec::new();
            if s.requires_baseline {
                requires.push("baseline".to_string());
            }
            if s.requires_matrix {
                requires.push("E2E matrix".to_string());
            }
            if s.requires_performance_validated {
                requires.push("performance validated".to_string());
            }
            requires.extend(s.test_suites.iter().map(|t| format!("{} ({} tests)", t.name, t.tests)));
            let items: usize = s.checklist.iter().map(|c| c.items.len()).sum();
            view! {
                <tr data-testid="plan-stage">
                    <td>{i}</td>
                    <td>{s.name.clone()}</td>
                    <td>{s.flag.to_string()}</td>
                    <td>{s.soak.to_string()}</td>
                    <td>{criteria}</td>
                    <td>{if requires.is_empty() { "—".to_string() } else { requires.join(", ") }}</td>
                    <td>{items}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <div class="table-scroll">
            <table>
                <thead><tr><th>"#"</th><th>"Stage"</th><th>"Flag"</th><th>"Soak"</th><th>"Criteria"</th><th>"Also required"</th><th>"Checklist items"</th></tr></thead>
                <tbody>{rows}</tbody>
            </table>
        </div>
    }
}
