//! Every rollout on one page: where each stands and whether it is healthy, newest first.

use crate::api::list_rollouts;
use crate::components::notice::ErrorNotice;
use crate::domain::status::Level;
use crate::model::StatusView;
use leptos::prelude::*;

#[component]
pub fn OverviewPage() -> impl IntoView {
    let rollouts = Resource::new(|| (), |_| list_rollouts());
    view! {
        <h1>"Rollouts"</h1>
        <Suspense fallback=|| view! { <p class="notice">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match rollouts.await {
                    Ok(list) if list.is_empty() => view! { <p class="notice">"No rollouts yet."</p> }.into_any(),
                    Ok(list) => view! { <ul class="overview">{list.into_iter().map(|r| view! { <Row r/> }).collect_view()}</ul> }.into_any(),
                    Err(e) => view! { <ErrorNotice error=e/> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn Row(r: StatusView) -> impl IntoView {
    let level = match r.health.level {
        Level::Healthy => "healthy",
        Level::Watching => "watching",
        Level::Trouble => "trouble",
        Level::Idle => "idle",
    };
    let stage = format!("Stage {} of {}: {}", r.stage.0, r.stage_count.saturating_sub(1), r.stage_name);
    view! {
        <li class="card overview-row" data-testid="rollout-row">
            <div>
                <h2><a href=format!("/rollouts/{}", r.rollout_id)>{r.name.clone()}</a></h2>
                <p class="muted">{stage}" · "{format!("served: {}", r.served)}</p>
            </div>
            <div class="overview-health">
                <span class=format!("pill status-{}", r.status.as_str())>{r.status.label()}</span>
                <span class=format!("health {level}")>{r.health.headline.clone()}</span>
                <a href=format!("/status/{}", r.rollout_id)>"Status page"</a>
            </div>
        </li>
    }
}
