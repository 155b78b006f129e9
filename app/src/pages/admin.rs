//! The admin page: people and their roles, API tokens, share links to status pages, and
//! outgoing webhooks with their delivery log. A password, token, link or signing secret is
//! shown once, right after it is made.

use crate::api::{
    CreateShareLink, CreateToken, CreateUser, CreateWebhook, RemoveWebhook, RevokeShareLink, RevokeToken, UnlockUser, UpdateUser,
    admin_overview, webhook_overview,
};
use crate::components::local_time::LocalTime;
use crate::components::notice::ErrorNotice;
use crate::domain::access::{Role, Scope};
use crate::domain::webhook::Event;
use crate::format;
use crate::model::{AdminLists, ShareLinkView, TokenView, UserView, WebhookLog};
use leptos::form::ActionForm;
use leptos::prelude::*;

/// Rendered on the server; the page's `Live` island posts its forms in place and swaps in the
/// lists after each change. A secret is shown once, in its card's `data-issued` slot, from the
/// answer to the form that made it; it is never in the page the server renders.
#[component]
pub fn AdminPage() -> impl IntoView {
    let create_user = ServerAction::<CreateUser>::new();
    let update_user = ServerAction::<UpdateUser>::new();
    let unlock_user = ServerAction::<UnlockUser>::new();
    let create_token = ServerAction::<CreateToken>::new();
    let revoke_token = ServerAction::<RevokeToken>::new();
    let create_link = ServerAction::<CreateShareLink>::new();
    let revoke_link = ServerAction::<RevokeShareLink>::new();
    let create_webhook = ServerAction::<CreateWebhook>::new();
    let remove_webhook = ServerAction::<RemoveWebhook>::new();
    let lists = Resource::new_blocking(|| (), |_| admin_overview());
    let webhooks = Resource::new_blocking(|| (), |_| webhook_overview());
    view! {
        <h1>"Admin"</h1>
        <Suspense fallback=|| view! { <p class="notice">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match lists.await {
                    Ok(AdminLists { users, tokens, share_links }) => view! {
                        <div class="region" data-live="users"><Users users create_user update_user unlock_user/></div>
                        <div class="region" data-live="tokens"><Tokens tokens create_token revoke_token/></div>
                        <div class="region" data-live="links"><ShareLinks links=share_links create_link revoke_link/></div>
                    }
                    .into_any(),
                    Err(error) => view! { <ErrorNotice error=error/> }.into_any(),
                }
            })}
        </Suspense>
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                webhooks.await.ok().map(|logs| view! { <div class="region" data-live="webhooks"><Webhooks logs create_webhook remove_webhook/></div> })
            })}
        </Suspense>
    }
}

/// A card's slots for what its last form got back: a refusal, and a secret shown once
/// (`intro` before it). The page's `Live` island fills them.
fn slots(intro: &'static str) -> impl IntoView {
    view! {
        <p class="error" role="alert" data-error hidden></p>
        <p class="issued" role="status" data-issued hidden data-intro=intro></p>
    }
}

fn role_options(selected: Role) -> impl IntoView {
    Role::ALL.map(|r| view! { <option value=r.as_str() selected=r == selected>{r.as_str()}</option> }).collect_view()
}

#[component]
fn Users(
    users: Vec<UserView>,
    create_user: ServerAction<CreateUser>,
    update_user: ServerAction<UpdateUser>,
    unlock_user: ServerAction<UnlockUser>,
) -> impl IntoView {
    let rows = users
        .into_iter()
        .map(|u| {
            let (id, id_again, id_unlock) = (u.id.to_string(), u.id.to_string(), u.id.to_string());
            let unlock_label = format!("Clear the failed sign-ins of {}", u.name);
            let toggle = if u.disabled { ("false", "Enable") } else { ("true", "Disable") };
            let (role_label, toggle_label) = (format!("Role of {}", u.name), format!("{} {}", toggle.1, u.name));
            let added = format!("{} by {}", format::utc_minute(u.created_at), u.created_by);
            let status = if u.disabled { "disabled" } else { "active" };
            view! {
                <tr data-testid="user-row">
                    <td>{u.name.clone()}</td>
                    <td>
                        <ActionForm action=update_user attr:class="inline-form">
                            <input type="hidden" name="id" value=id/>
                            <select name="role" aria-label=role_label>{role_options(u.role)}</select>
                            <button type="submit">"Change role"</button>
                        </ActionForm>
                    </td>
                    <td>{added}</td>
                    <td>{status}</td>
                    <td>
                        <ActionForm action=update_user attr:class="inline-form">
                            <input type="hidden" name="id" value=id_again/>
                            <input type="hidden" name="disabled" value=toggle.0/>
                            <button type="submit" aria-label=toggle_label>{toggle.1}</button>
                        </ActionForm>
                        <ActionForm action=unlock_user attr:class="inline-form" attr:data-shows-done="">
                            <input type="hidden" name="id" value=id_unlock/>
                            <button type="submit" aria-label=unlock_label title="When someone else's guesses have throttled this account">"Unlock"</button>
                        </ActionForm>
                    </td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <section class="card" aria-labelledby="users-title">
            <h2 id="users-title">"People"</h2>
            <p class="muted">"Viewers read; operators tick checklists, pause and ask to advance; approvers approve advances, start, resume, roll back, override and acknowledge alerts; admins manage accounts, tokens, share links and webhooks."</p>
            <div class="table-scroll">
                <table>
                    <thead><tr><th>"Name"</th><th>"Role"</th><th>"Added"</th><th>"Status"</th><th></th></tr></thead>
                    <tbody>{rows}</tbody>
                </table>
            </div>
            <p class="issued" role="status" data-testid="unlocked" data-done hidden>"Failed sign-ins cleared: they may sign in again at once."</p>
            <h3>"Add a person"</h3>
            {slots("Added. Their password, shown only now:")}
            <ActionForm action=create_user attr:class="action-form" attr:data-shows-issued="">
                <label>"Name" <input name="name" required=true placeholder="ana.lopez" autocomplete="off"/></label>
                <label>"Role" <select name="role">{role_options(Role::Viewer)}</select></label>
                <label>"Password (leave empty to generate one)" <input name="password" type="password" autocomplete="new-password"/></label>
                <button type="submit" class="primary">"Add"</button>
            </ActionForm>
        </section>
    }
}

#[component]
fn Tokens(tokens: Vec<TokenView>, create_token: ServerAction<CreateToken>, revoke_token: ServerAction<RevokeToken>) -> impl IntoView {
    let rows = tokens
        .into_iter()
        .map(|t| {
            let scopes: Vec<&str> = t.scopes.iter().map(|s| s.as_str()).collect();
            let revoke_label = format!("Revoke token {}", t.name);
            let revoke = (!t.revoked).then(|| {
                view! {
                    <ActionForm action=revoke_token attr:class="inline-form">
                        <input type="hidden" name="id" value=t.id.to_string()/>
                        <button type="submit" class="danger" aria-label=revoke_label>"Revoke"</button>
                    </ActionForm>
                }
            });
            view! {
                <tr data-testid="token-row">
                    <td>{t.name.clone()}</td>
                    <td>{scopes.join(", ")}</td>
                    <td>{format!("{} by {}", format::utc_minute(t.created_at), t.created_by)}</td>
                    <td>{t.last_used_at.map_or_else(|| "never".to_string(), format::utc_minute)}</td>
                    <td>{if t.revoked { "revoked" } else { "active" }}</td>
                    <td>{revoke}</td>
                </tr>
            }
        })
        .collect_view();
    let scope_boxes = Scope::ALL
        .map(|s| view! { <label class="inline"><input type="checkbox" name=format!("scope_{}", s.as_str())/>{s.as_str()}</label> })
        .collect_view();
    view! {
        <section class="card" aria-labelledby="tokens-title">
            <h2 id="tokens-title">"API tokens"</h2>
            <p class="muted">"For services and CI: ingest (send metrics events), evaluate (ask for the flag), read (rollouts and metrics), drive (ask to advance, pause, roll back, checklists, alerts, CI test results; never approve or override). Send as Authorization: Bearer, or X-API-Key for OFREP."</p>
            <div class="table-scroll">
                <table>
                    <thead><tr><th>"Name"</th><th>"Scopes"</th><th>"Created"</th><th>"Last used"</th><th>"Status"</th><th></th></tr></thead>
                    <tbody>{rows}</tbody>
                </table>
            </div>
            <h3>"Create a token"</h3>
            {slots("Token created. Copy it now; it is not shown again:")}
            <ActionForm action=create_token attr:class="action-form" attr:data-shows-issued="">
                <label>"Token name" <input name="name" required=true placeholder="upload-service (prod)"/></label>
                <fieldset><legend>"Scopes"</legend>{scope_boxes}</fieldset>
                <button type="submit" class="primary">"Create token"</button>
            </ActionForm>
        </section>
    }
}

#[component]
fn ShareLinks(
    links: Vec<ShareLinkView>,
    create_link: ServerAction<CreateShareLink>,
    revoke_link: ServerAction<RevokeShareLink>,
) -> impl IntoView {
    let rows = links
        .into_iter()
        .map(|l| {
            let revoke_label = format!("Revoke the link for {}", l.label);
            let revoke = (!l.revoked).then(|| {
                view! {
                    <ActionForm action=revoke_link attr:class="inline-form">
                        <input type="hidden" name="id" value=l.id.to_string()/>
                        <button type="submit" class="danger" aria-label=revoke_label>"Revoke"</button>
                    </ActionForm>
                }
            });
            view! {
                <tr data-testid="share-link-row">
                    <td>{l.label.clone()}</td>
                    <td><a href=format!("/status/{}", l.rollout_id)>{format!("rollout {}", l.rollout_id)}</a></td>
                    <td>{format!("{} by {}", format::utc_minute(l.created_at), l.created_by)}</td>
                    <td>{format::utc_minute(l.expires_at)}</td>
                    <td>{if l.revoked { "revoked" } else { "active" }}</td>
                    <td>{revoke}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <section class="card" aria-labelledby="links-title">
            <h2 id="links-title">"Share links"</h2>
            <p class="muted">"A share link opens one rollout's status page, read-only, without an account, until it expires or is revoked."</p>
            <div class="table-scroll">
                <table>
                    <thead><tr><th>"For"</th><th>"Opens"</th><th>"Created"</th><th>"Expires"</th><th>"Status"</th><th></th></tr></thead>
                    <tbody>{rows}</tbody>
                </table>
            </div>
            <h3>"Create a share link"</h3>
            {slots("Link created. Send it now; it is not shown again:")}
            <ActionForm action=create_link attr:class="action-form" attr:data-shows-issued="/share/">
                <label>"Rollout" <input name="rollout_id" type="number" min="1" value="1" required=true/></label>
                <label>"Who it is for" <input name="label" required=true placeholder="exec staff meeting"/></label>
                <label>"Valid for (hours)" <input name="valid_for_hours" type="number" min="1" max="8784" value="336" required=true/></label>
                <button type="submit" class="primary">"Create link"</button>
            </ActionForm>
        </section>
    }
}

#[component]
fn Webhooks(
    logs: Vec<WebhookLog>,
    create_webhook: ServerAction<CreateWebhook>,
    remove_webhook: ServerAction<RemoveWebhook>,
) -> impl IntoView {
    let hooks = logs
        .into_iter()
        .map(|WebhookLog { webhook: w, deliveries }| {
            let events = if w.events.is_empty() { "every event".to_string() } else { w.events.join(", ") };
            let remove_label = format!("Remove webhook {}", w.id);
            let remove = (!w.disabled).then(|| {
                view! {
                    <ActionForm action=remove_webhook attr:class="inline-form">
                        <input type="hidden" name="id" value=w.id.to_string()/>
                        <button type="submit" class="danger" aria-label=remove_label>"Remove"</button>
                    </ActionForm>
                }
            });
            let rows = deliveries
                .into_iter()
                .map(|d| {
                    let answer = match (d.last_status, &d.last_error) {
                        (Some(status), _) if d.state == "delivered" => format!("HTTP {status}"),
                        (_, Some(error)) => error.clone(),
                        _ => "—".to_string(),
                    };
                    let next = d.next_attempt_at.map(|at| view! { " · next try " <LocalTime at/> });
                    view! {
                        <tr data-testid="delivery-row">
                            <td><LocalTime at=d.created_at/></td>
                            <td>{d.event.clone()}</td>
                            <td class=format!("delivery-{}", d.state)>{d.state.clone()}{next}</td>
                            <td>{d.attempts}</td>
                            <td>{answer}</td>
                        </tr>
                    }
                })
                .collect_view();
            view! {
                <div class="webhook" data-testid="webhook">
                    <p>
                        <strong>{format!("#{} ", w.id)}</strong>
                        <code>{w.url.clone()}</code>
                        {format!(" — {events}{}", if w.disabled { " (removed)" } else { "" })}
                        {(!w.description.is_empty()).then(|| format!(" — {}", w.description))}
                        {remove}
                    </p>
                    <div class="table-scroll">
                        <table>
                            <caption class="muted">"Newest deliveries"</caption>
                            <thead><tr><th>"Made"</th><th>"Event"</th><th>"State"</th><th>"Attempts"</th><th>"Last answer"</th></tr></thead>
                            <tbody>{rows}</tbody>
                        </table>
                    </div>
                </div>
            }
        })
        .collect_view();
    let event_boxes = Event::ALL
        .map(|e| view! { <label class="inline"><input type="checkbox" name=format!("event_{}", e.as_str())/>{e.label()}</label> })
        .collect_view();
    view! {
        <section class="card" aria-labelledby="webhooks-title">
            <h2 id="webhooks-title">"Webhooks"</h2>
            <p class="muted">"Rampart POSTs signed JSON (header Rampart-Signature: HMAC-SHA256 with the webhook's secret) when approval is needed, a stage changes, the flag is rolled back, the guard raises an alert, or the rollout completes; a failed delivery is retried for about 3.5 hours. The payload's text field is one line a chat relay can post."</p>
            {hooks}
            <h3>"Add a webhook"</h3>
            {slots("Webhook added. Its signing secret, shown this once:")}
            <ActionForm action=create_webhook attr:class="action-form" attr:data-shows-issued="">
                <label>"URL" <input name="url" type="url" required=true placeholder="https://relay.example.com/rampart"/></label>
                <label>"Description" <input name="description" placeholder="#upload-rollout channel"/></label>
                <fieldset><legend>"Events (none ticked: every event)"</legend>{event_boxes}</fieldset>
                <button type="submit" class="primary">"Add webhook"</button>
            </ActionForm>
        </section>
    }
}
