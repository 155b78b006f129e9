//! The audit trail, newest first: who did what, when, and why.

use crate::components::local_time::LocalTime;
use crate::model::AuditEntry;
use leptos::prelude::*;

#[component]
pub fn Timeline(entries: Vec<AuditEntry>) -> impl IntoView {
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
        </section>
    }
}
