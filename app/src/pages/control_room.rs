//! The control room: one rollout's stages, the current stage's criteria and checklist, the
//! commands an approver may give, and the audit trail.

use crate::api::{AcknowledgeAlert, RunCommand, get_control_room};
use crate::components::actions::Actions;
use crate::components::alerts::Alerts;
use crate::components::baseline::BaselineCard;
use crate::components::charts::Charts;
use crate::components::checklist::{Checklist, OtherChecklists};
use crate::components::impact::ImpactTable;
use crate::components::matrix::EndToEndMatrix;
use crate::components::notice::ErrorNotice;
use crate::components::stage_panel::StagePanel;
use crate::components::stage_track::StageTrack;
use crate::components::test_runs::TestRuns;
use crate::components::timeline::Timeline;
use crate::domain::access::Principal;
use crate::error::AppError;
use crate::model::ControlRoom;
use leptos::prelude::*;
use leptos_router::hooks::{use_params_map, use_query_map};

#[component]
pub fn ControlRoomPage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let rollout_id = params.read_untracked().get("id").and_then(|id| id.parse::<i64>().ok());
    // `?baseline_hours=N`: the baseline card's look at the last N hours (a plain form asks).
    let baseline_hours = query.read_untracked().get("baseline_hours").and_then(|h| h.parse::<u32>().ok());
    // `?hours=N`: the charts' range (links in the charts' head pick it).
    let hours = query.read_untracked().get("hours").and_then(|h| h.parse::<u32>().ok()).unwrap_or(24);
    // A refusal a form sent without JavaScript came back with (see `AppError::from_form_redirect`).
    let refused = |path: &str| {
        let query = query.read_untracked();
        AppError::from_form_redirect(query.get("__path").as_deref(), query.get("__err").as_deref(), path)
            .map(|e| e.said_by_a_link().to_string())
    };
    let refusals = Refusals { command: refused("/api/run_command"), acknowledgement: refused("/api/acknowledge_alert") };
    let command = ServerAction::<RunCommand>::new();
    let acknowledge = ServerAction::<AcknowledgeAlert>::new();
    let room = Resource::new_blocking(move || (), move |_| get_control_room(rollout_id, baseline_hours));

    view! {
        <Suspense fallback=|| view! { <p class="notice">"Loading the rollout…"</p> }>
            {move || Suspend::new({
                let refusals = refusals.clone();
                async move {
                let you = crate::you::you().await;
                match room.await {
                    Ok(room) => view! { <Room room command acknowledge you hours refusals=refusals.clone()/> }.into_any(),
                    Err(error) => view! { <ErrorNotice error/> }.into_any(),
                }
                }
            })}
        </Suspense>
    }
}

/// What the forms of the page were refused with, when it was loaded back from a form sent
/// without JavaScript.
#[derive(Clone, Default)]
struct Refusals {
    command: Option<String>,
    acknowledgement: Option<String>,
}

/// The page body. Each panel is type-erased (`into_any`), which keeps the view's type shallow
/// enough for release builds to compile quickly.
#[component]
fn Room(
    room: ControlRoom,
    command: ServerAction<RunCommand>,
    acknowledge: ServerAction<AcknowledgeAlert>,
    you: Principal,
    hours: u32,
    refusals: Refusals,
) -> impl IntoView {
    let stage = room.plan.stage(room.state.stage).cloned();
    let stage_items: Vec<_> = room.checklist.iter().filter(|i| i.stage == room.state.stage).cloned().collect();
    let head = view! {
        <section class="rollout-head">
            <div>
                <h1>{room.plan.name.clone()}</h1>
                <p class="muted">
                    "Flag " <code>{room.plan.flag.key.clone()}</code> " · plan "
                    <a href=format!("/rollouts/{}/plan", room.rollout_id)><code>{room.plan.key.clone()}</code></a>
                    " · " {room.state.version.to_string()} " · "
                    // Server pages (printable, with a Markdown download), not routed here.
                    <a href=format!("/status/{}/report/compare", room.rollout_id) rel="external">"Stages compared"</a>
                    " · "
                    <a href=format!("/status/{}/report", room.rollout_id) rel="external">"Report"</a>
                </p>
            </div>
            <div class="head-status">
                <span class=format!("pill status-{}", room.state.status.as_str()) data-testid="rollout-status">
                    {room.state.status.label()}
                </span>
                <span class="pill served" data-testid="served-flag">{format!("Served: {}", room.served)}</span>
            </div>
        </section>
    }
    .into_any();
    let track = view! { <StageTrack plan=room.plan.clone() state=room.state.clone()/> }.into_any();
    let panel = stage.map(|stage| {
        view! { <StagePanel stage state=room.state.clone() gates=room.gates.clone() blockers=room.blockers.clone() baseline=room.baseline.clone() now=room.now/> }.into_any()
    });
    let criteria = room.plan.stage(room.state.stage).and_then(|s| s.criteria.clone());
    let charts = view! { <Charts rollout_id=room.rollout_id criteria baseline=room.baseline.clone() hours baseline_hours=room.baseline_look.as_ref().map(|l| l.hours)/> }.into_any();
    let baseline = view! {
        <BaselineCard
            rollout_id=room.rollout_id
            baseline=room.baseline.clone()
            window=room.baseline_window.clone()
            look=room.baseline_look.clone()
            moved=use_query_map().read_untracked().get("baseline_moved").is_some()
            you=you.clone()
        />
    }
    .into_any();
    let tests = view! { <TestRuns plan=room.plan.clone() stage=room.state.stage runs=room.test_runs.clone()/> }.into_any();
    let matrix = room.matrix.clone().map(|matrix| view! { <EndToEndMatrix matrix/> }.into_any());
    let impact = room.impact.clone().map(|impact| view! { <ImpactTable impact/> }.into_any());
    let plan_sections = room.plan.stage(room.state.stage).map(|s| s.checklist.clone()).unwrap_or_default();
    let checklist = view! { <Checklist rollout_id=room.rollout_id items=stage_items you=you.clone() plan_sections/> }.into_any();
    let routines = (!room.routines.is_empty()).then(|| {
        view! { <Checklist rollout_id=room.rollout_id items=room.routines.clone() you=you.clone() title="Routines" key="routines"/> }
            .into_any()
    });
    let other_checklists =
        view! { <OtherChecklists plan=room.plan.clone() current=room.state.stage items=room.checklist.clone()/> }.into_any();
    let actions = view! { <Actions room=room.clone() command you=you.clone() refusal=refusals.command/> }.into_any();
    let timeline = view! { <Timeline rollout_id=room.rollout_id entries=room.audit.clone()/> }.into_any();
    let alerts = view! { <Alerts rollout_id=room.rollout_id alerts=room.alerts.clone() acknowledge you refusal=refusals.acknowledgement/> }
        .into_any();
    // Each region is swapped whole by the page's `Live` island when its server HTML changes.
    let region = |name: &'static str, view: Option<AnyView>| view! { <div class="region" data-live=name>{view}</div> };
    view! {
        <div data-live-rollout=room.rollout_id.to_string()>
            {region("head", Some(head))}
            {region("track", Some(track))}
            <div class="columns">
                <div class="main-column">
                    {region("panel", panel)}
                    {region("charts", Some(charts))}
                    {region("baseline", Some(baseline))}
                    {region("impact", impact)}
                    {region("matrix", matrix)}
                    {region("tests", Some(tests))}
                    {region("routines", routines)}
                    {region("checklist", Some(checklist))}
                    {region("other-checklists", Some(other_checklists))}
                </div>
                <aside class="side-column">
                    {region("actions", Some(actions))}
                    {region("alerts", Some(alerts))}
                    {region("timeline", Some(timeline))}
                </aside>
            </div>
        </div>
    }
}
