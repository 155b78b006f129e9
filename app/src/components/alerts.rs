//! Alerts from the guard loop. An open one blocks advancing until an approver acknowledges it
//! with a note saying what was checked.

use crate::api::AcknowledgeAlert;
use crate::components::local_time::LocalTime;
use crate::domain::access::{Permission, Principal};
use crate::model::Alert;
use leptos::form::ActionForm;
use leptos::prelude::*;

#[component]
pub fn Alerts(
    rollout_id: i64,
    alerts: Vec<Alert>,
    acknowledge: ServerAction<AcknowledgeAlert>,
    you: Principal,
    /// What the last acknowledgement was refused with (a form sent without JavaScript).
    refusal: Option<String>,
) -> impl IntoView {
    let no = crate::components::actions::denied(&you, Permission::AcknowledgeAlert);
    if alerts.is_empty() {
        return view! { <section class="card alerts" aria-labelledby="alerts-title"><h2 id="alerts-title">"Alerts"</h2><p class="muted">"No alerts."</p></section> }.into_any();
    }
    let refused = refusal.is_none();
    let items = alerts
        .into_iter()
        .map(|alert| {
            let open = alert.acknowledged_at.is_none();
            let status = match (alert.acknowledged_by.clone(), alert.acknowledged_at) {
                (Some(who), Some(at)) => view! { "acknowledged by " {who} " at " <LocalTime at/> }.into_any(),
                _ => "open — blocks Advance".into_any(),
            };
            let no = no.clone();
            let form = open.then(|| {
                view! {
                    <ActionForm action=acknowledge attr:class="action-form">
                        <input type="hidden" name="rollout_id" value=rollout_id.to_string()/>
                        <input type="hidden" name="alert_id" value=alert.id.to_string()/>
                        <label>"What was checked" <textarea name="note" required=true rows="2" disabled=no.is_some()></textarea></label>
                        <button type="submit" data-testid="acknowledge" disabled=no.is_some() title=no>"Acknowledge"</button>
                    </ActionForm>
                }
            });
            view! {
                <li class:open=open data-testid="alert">
                    <strong>{alert.message}</strong>
                    <span class="muted">"raised " <LocalTime at=alert.raised_at/> " · " {status}</span>
                    {alert.acknowledgement.map(|n| view! { <q class="reason">{n}</q> })}
                    {form}
                </li>
            }
        })
        .collect_view();
    view! {
        <section class="card alerts" aria-labelledby="alerts-title">
            <h2 id="alerts-title">"Alerts"</h2>
            <p class="error" role="alert" data-error hidden=refused>{refusal}</p>
            <ul>{items}</ul>
        </section>
    }
    .into_any()
}
