//! The stakeholder status page: read-only, rendered whole on the server (it works with
//! JavaScript off), answering in 30 seconds where the rollout is, whether it is healthy, what
//! comes next and when, and what went wrong lately.

use crate::api::get_status;
use crate::components::local_time::LocalTime;
use crate::components::notice::ErrorNotice;
use crate::domain::status::Level;
use crate::model::StatusView;
use leptos::prelude::*;
use leptos_router::hooks::use_params_map;

#[component]
pub fn StatusPage() -> impl IntoView {
    let params = use_params_map();
    let rollout_id = move || params.read().get("id").and_then(|id| id.parse::<i64>().ok());
    let status = Resource::new(rollout_id, get_status);
    view! {
        <Suspense fallback=|| view! { <p class="notice">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match status.await {
                    Ok(view) => view! { <Status view/> }.into_any(),
                    Err(error) => view! { <ErrorNotice error=error/> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn Status(view: StatusView) -> impl IntoView {
    let level_class = match view.health.level {
        Level::Healthy => "health healthy",
        Level::Watching => "health watching",
        Level::Trouble => "health trouble",
        Level::Idle => "health idle",
    };
    let next = view.next.clone().map(|(name, when)| {
        let when = match when {
            Some(t) => view! { "not before " <LocalTime at=t/> }.into_any(),
            None => "when the team starts it".into_any(),
        };
        view! { <p data-testid="next"><strong>"Next: "</strong>{name}" — "{when}</p> }
    });
    let numbers =
        view.numbers.into_iter().map(|(label, value)| view! { <div class="number"><dt>{label}</dt><dd>{value}</dd></div> }).collect_view();
    let incidents = if view.incidents.is_empty() {
        view! { <p class="muted">"None."</p> }.into_any()
    } else {
        view! {
            <ul class="incidents">
                {view.incidents.into_iter().map(|e| view! {
                    <li>
                        <span class="muted"><LocalTime at=e.at/></span> " " {e.summary}
                        <span class="muted">" (" {e.actor} ")"</span>
                        {e.reason.map(|r| view! { <span class="muted">" — "{r}</span> })}
                    </li>
                }).collect_view()}
            </ul>
        }
        .into_any()
    };
    // Served by the server as whole pages (printable, with a Markdown download), not routed here.
    let reports = {
        let id = view.rollout_id;
        let main = if view.status == crate::domain::rollout::Status::Complete { "Final report" } else { "Report so far" };
        view! {
            <nav class="reports" aria-label="Reports" data-testid="reports">
                <a href=format!("/status/{id}/report") rel="external">{main}</a>
                " · "
                <a href=format!("/status/{id}/report/daily") rel="external">"The last 24 hours"</a>
                " · "
                <a href=format!("/status/{id}/report/compare") rel="external">"Stages compared"</a>
            </nav>
        }
    };
    view! {
        <article class="status-page">
            <h1>{view.name}</h1>
            <p class="muted">{format!("Stage {} of {}: {} · served {}", view.stage.0, view.stage_count - 1, view.stage_name, view.served)}</p>
            <section class=level_class data-testid="health">
                <span class="health-level">{view.health.level.label()}</span>
                <p class="health-headline">{view.health.headline}</p>
            </section>
            {next}
            <h2>"Key numbers"</h2>
            <dl class="numbers">{numbers}</dl>
            <h2>"Incidents"</h2>
            {incidents}
            <h2>"Reports"</h2>
            {reports}
            <p class="muted small">"As of " <LocalTime at=view.now/> ". This page is read-only."</p>
        </article>
    }
}
