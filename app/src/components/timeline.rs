//! The audit trail, newest first: who did what, when, and why; the newest entries here, the
//! whole trail (with each entry's evidence) as a download.

use crate::components::local_time::LocalTime;
use crate::model::AuditEntry;
use leptos::prelude::*;

#[component]
pub fn Timeline(rollout_id: i64, entries: Vec<AuditEntry>) -> impl IntoView {
    let empty = entries.is_empty().then(|| view! { <p class="muted">"Nothing has happened yet."</p> });
    view! {
        <section class="card timeline" aria-labelledby="timeline-title">
            <h2 id="timeline-title">"Timeline"</h2>
            {empty}
            <ol>
                {entries.into_iter().map(|e| view! {
                    <li data-testid="audit-entry">
                        <span class="muted"><LocalTime at=e.at/></span>
                        <span class="actor">{e.actor}</span>
                        <span class="summary">{e.summary}</span>
                        {e.reason.map(|r| view! { <q class="reason">{r}</q> })}
                    </li>
                }).collect_view()}
            </ol>
            <p class="muted" data-testid="audit-export">
                "The whole history: "
                <a href=format!("/api/v1/rollouts/{rollout_id}/audit?format=csv") download="">"CSV"</a>
                " · "
                <a href=format!("/api/v1/rollouts/{rollout_id}/audit?limit=1000")>"JSON with evidence (pages of 1,000)"</a>
            </p>
        </section>
    }
}
