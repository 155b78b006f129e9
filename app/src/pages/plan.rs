//! The plan view: the stages and criteria of the rollout's plan, and a checker that validates
//! a plan file pasted into it, with each problem at its line or field.

use crate::api::{CheckPlan, get_control_room};
use crate::components::notice::ErrorNotice;
use crate::domain::plan::{Plan, Traffic};
use crate::domain::power;
use crate::domain::units::{Threshold, thousands};
use crate::model::{PlanSummary, StageRow};
use leptos::form::ActionForm;
use leptos::prelude::*;
use leptos_router::hooks::{use_params_map, use_query_map};

#[component]
pub fn PlanPage() -> impl IntoView {
    let params = use_params_map();
    let rollout_id = move || params.read().get("id").and_then(|id| id.parse::<i64>().ok());
    let room = Resource::new(rollout_id, |id| get_control_room(id, None));
    // `?uploads_per_hour=…&failure_rate=…`: the planner's traffic, typed into its form.
    let query = use_query_map();
    let asked = Asked {
        uploads_per_hour: query.read_untracked().get("uploads_per_hour"),
        failure_rate: query.read_untracked().get("failure_rate"),
    };
    view! {
        <Suspense fallback=|| view! { <p class="notice">"Loading…"</p> }>
            {move || Suspend::new({
                let asked = asked.clone();
                async move {
                match room.await {
                    Ok(room) => {
                        view! {
                        <h1>{format!("Plan: {}", room.plan.name)}</h1>
                        <p class="muted">"Plan " <code>{room.plan.key.clone()}</code> " · flag " <code>{room.plan.flag.key.clone()}</code></p>
                        <section class="card"><Stages stages=PlanSummary::of(&room.plan).stages/></section>
                        <PowerPlanner plan=room.plan.clone() asked/>
                    }
                    .into_any()
                    }
                    Err(e) => view! { <ErrorNotice error=e/> }.into_any(),
                }
                }
            })}
        </Suspense>
        <section class="card" aria-labelledby="check-title">
            <h2 id="check-title">"Check a plan file"</h2>
            <p class="muted">"Paste a plan (TOML). Nothing is saved; problems are listed with their line or field. The same check runs as " <code>"rampart plan check FILE"</code> "."</p>
            <PlanCheck/>
        </section>
    }
}

/// The stages of a plan as a table: flag, soak, criteria, what each requires.
#[component]
fn Stages(stages: Vec<StageRow>) -> impl IntoView {
    let rows = stages
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            view! {
                <tr data-testid="plan-stage">
                    <td>{i}</td>
                    <td>{s.name}</td>
                    <td>{s.flag}</td>
                    <td>{s.soak}</td>
                    <td>{s.criteria}</td>
                    <td>{s.requires}</td>
                    <td>{s.items}</td>
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

/// The plan checker: the only part of the page that runs in the browser (an island). The
/// server answers with the plan's table as text, so the browser parses no plan itself.
#[island]
fn PlanCheck() -> impl IntoView {
    let check = ServerAction::<CheckPlan>::new();
    let verdict = move || {
        check.value().get().map(|result| match result {
            Ok(plan) => view! {
                <div class="issued" role="status" data-testid="plan-valid">
                    <p>{format!("Valid: “{}”, {} stages, flag {}.", plan.name, plan.stages.len(), plan.flag)}</p>
                    <Stages stages=plan.stages/>
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
        <ActionForm action=check attr:class="action-form">
            <label>"Plan file" <textarea name="source" rows="12" required=true spellcheck="false" class="code"></textarea></label>
            <button type="submit" class="primary">"Check"</button>
        </ActionForm>
        {verdict}
    }
}

/// The traffic typed into the planner's form, as the page's query has it.
#[derive(Clone, Default)]
struct Asked {
    uploads_per_hour: Option<String>,
    failure_rate: Option<String>,
}

/// How long each stage's gates need at a traffic figure: the plan's `[traffic]`, or one typed
/// here. A GET form: the page's `Live` island swaps the table in as it is typed (`data-swap`);
/// without JavaScript the button asks. Nothing is saved.
#[component]
fn PowerPlanner(plan: Plan, asked: Asked) -> impl IntoView {
    let stated = plan.traffic;
    let per_hour = asked.uploads_per_hour.unwrap_or_else(|| stated.map_or_else(String::new, |t| t.uploads_per_hour.to_string()));
    let failures = asked.failure_rate.unwrap_or_else(|| stated.map_or_else(|| "0.2".to_string(), |t| t.failure_rate.get().to_string()));
    let rows = {
        let uploads_per_hour = per_hour.trim().replace(',', "").parse::<f64>().ok().filter(|v| v.is_finite() && *v > 0.0);
        let failure_rate = failures.trim().parse::<f64>().ok().and_then(|v| Threshold::new(v).ok());
        match (uploads_per_hour, failure_rate) {
            (Some(uploads_per_hour), Some(failure_rate)) => {
                // A typed failure rate stands for errors too, unless it is the plan's own figure.
                let error_rate = stated.filter(|t| t.failure_rate == failure_rate).and_then(|t| t.error_rate);
                let traffic = Traffic { uploads_per_hour, failure_rate, error_rate };
                let body = power::plan(&plan, &traffic)
                    .into_iter()
                    .map(|s| {
                        let class = if s.fits() { "verdict pass" } else { "verdict fail" };
                        let fit = if s.fits() { "within the soak" } else { "not within the soak" };
                        view! {
                            <tr data-testid="power-stage">
                                <td>{s.stage}</td>
                                <td>{s.name.clone()}</td>
                                <td>{thousands(s.treatment_per_hour.round() as u64)}</td>
                                <td>{s.sentence()}</td>
                                <td><span class=class>{fit}</span></td>
                            </tr>
                        }
                    })
                    .collect_view();
                view! {
                    <div class="table-scroll">
                        <table data-testid="power">
                            <thead><tr><th>"#"</th><th>"Stage"</th><th>"Treatment uploads an hour"</th><th>"The gates need"</th><th>"Soak"</th></tr></thead>
                            <tbody>{body}</tbody>
                        </table>
                    </div>
                }
                .into_any()
            }
            _ => view! { <p class="muted" data-testid="power-empty">"Type the service's uploads an hour and its failure rate today to see how long each stage's gates need."</p> }.into_any(),
        }
    };
    view! {
        <section class="card" aria-labelledby="power-title">
            <h2 id="power-title">"Evidence each stage needs"</h2>
            <p class="muted">
                "Treatment uploads before the rate gates and the minimum can pass if the change is as good as today's path — in a typical stage, and by when 9 in 10 stages have passed (the soak should hold that) — and how long they take at this traffic (latency and memory are not planned). "
                {if stated.is_some() { "Figures from the plan's [traffic]; change them to try others." } else { "The plan states no [traffic]." }}
            </p>
            <form method="get" class="action-form" data-swap="">
                <label>"Uploads an hour (both arms)" <input name="uploads_per_hour" inputmode="numeric" value=per_hour/></label>
                <label>"Failure rate today (%)" <input name="failure_rate" inputmode="decimal" value=failures/></label>
                <noscript><button type="submit">"Show"</button></noscript>
            </form>
            <div class="region" data-live="power">{rows}</div>
        </section>
    }
}
