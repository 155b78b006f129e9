//! The admin page: people and their roles, API tokens, share links to status pages, and
//! outgoing webhooks with their delivery log. A password, token, link or signing secret is
//! shown once, right after it is made.

use crate::api::{
    CreateShareLink, CreateToken, CreateUser, CreateWebhook, RemoveWebhook, RevokeShareLink, RevokeToken, UnlockUser, UpdateUser,
    admin_overview, webhook_overview,
};
use crate::components::local_time::LocalTime;
use crate::domain::access::{Role, Scope};
use crate::domain::webhook::Event;
use crate::error::AppError;
use crate::format;
use crate::model::{AdminLists, Issued, ShareLinkView, TokenView, UserView, WebhookLog, WebhookView};
use leptos::form::ActionForm;
use leptos::prelude::*;

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
    let webhooks = Resource::new(move || (create_webhook.version().get(), remove_webhook.version().get()), |_| webhook_overview());
    let lists = Resource::new(
        move || {
            (
                create_user.version().get(),
                update_user.version().get(),
                create_token.version().get(),
                revoke_token.version().get(),
                create_link.version().get(),
                revoke_link.version().get(),
            )
        },
        |_| admin_overview(),
    );
    let errors = move || {
        [
            update_user.value().get().and_then(Result::err),
            unlock_user.value().get().and_then(Result::err),
            revoke_token.value().get().and_then(Result::err),
            revoke_link.value().get().and_then(Result::err),
            remove_webhook.value().get().and_then(Result::err),
        ]
        .into_iter()
        .flatten()
        .map(|e| view! { <p class="error" role="alert">{e.to_string()}</p> })
        .collect_view()
    };
    let unlocked = move || {
        unlock_user.value().get().and_then(Result::ok).map(|()| {
            view! { <p class="issued" role="status" data-testid="unlocked">"Failed sign-ins cleared: they may sign in again at once."</p> }
        })
    };
    view! {
        <h1>"Admin"</h1>
        {errors}
        {unlocked}
        <Transition fallback=|| view! { <p class="notice">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match lists.await {
                    Ok(AdminLists { users, tokens, share_links }) => view! {
                        <Users users create_user update_user unlock_user/>
                        <Tokens tokens create_token revoke_token/>
                        <ShareLinks links=share_links create_link revoke_link/>
                    }
                    .into_any(),
                    Err(error) => view! { <p class="notice error" role="alert">{error.to_string()}</p> }.into_any(),
                }
            })}
        </Transition>
        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                webhooks.await.ok().map(|logs| view! { <Webhooks logs create_webhook remove_webhook/> })
            })}
        </Transition>
    }
}

/// The outcome of a create action: the error, or the secret shown once.
fn issued<T: Clone + Send + Sync + 'static>(
    value: Option<Result<Issued<T>, AppError>>,
    shown: impl Fn(&Issued<T>) -> AnyView,
) -> Option<AnyView> {
    match value? {
        Err(e) => Some(view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any()),
        Ok(issued) => Some(shown(&issued)),
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
    let result = move || {
        issued(create_user.value().get(), |i: &Issued<UserView>| {
            let text = if i.secret.is_empty() {
                format!("Added {} as {}.", i.item.name, i.item.role)
            } else {
                format!("Added {} as {}. Their password, shown only now: ", i.item.name, i.item.role)
            };
            let secret = (!i.secret.is_empty()).then(|| view! { <code data-testid="issued-secret">{i.secret.clone()}</code> });
            view! { <p class="issued" role="status">{text}{secret}</p> }.into_any()
        })
    };
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
                        <ActionForm action=unlock_user attr:class="inline-form">
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
            <h3>"Add a person"</h3>
            {result}
            <ActionForm action=create_user attr:class="action-form">
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
    let result = move || {
        issued(create_token.value().get(), |i: &Issued<TokenView>| {
            view! {
                <p class="issued" role="status">
                    {format!("Token {} created. Copy it now; it is not shown again: ", i.item.name)}
                    <code data-testid="issued-secret">{i.secret.clone()}</code>
                </p>
            }
            .into_any()
        })
    };
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
            {result}
            <ActionForm action=create_token attr:class="action-form">
                <label>"Token name" <input name="name" required=true placeholder="upload-service (prod)"/></label>
                <fieldset><legend>"Scopes"</legend>{scope_boxes}</fieldset>
                <button type="submit" class="primary">"Create token"</button>
            </ActionForm>
        </section>
    }
}

/// The full address of a share link, as the browser would open it.
fn share_url(secret: &str) -> String {
    let path = format!("/share/{secret}");
    #[cfg(feature = "hydrate")]
    if let Ok(origin) = leptos::prelude::window().location().origin() {
        return format!("{origin}{path}");
    }
    path
}

#[component]
fn ShareLinks(
    links: Vec<ShareLinkView>,
    create_link: ServerAction<CreateShareLink>,
    revoke_link: ServerAction<RevokeShareLink>,
) -> impl IntoView {
    let result = move || {
        issued(create_link.value().get(), |i: &Issued<ShareLinkView>| {
            let url = share_url(&i.secret);
            view! {
                <p class="issued" role="status">
                    {format!("Link for {} (valid until {}). Send it now; it is not shown again: ", i.item.label, format::utc_minute(i.item.expires_at))}
                    <a href=url.clone() data-testid="issued-secret">{url.clone()}</a>
                </p>
            }
            .into_any()
        })
    };
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
            {result}
            <ActionForm action=create_link attr:class="action-form">
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
    let result = move || {
        issued(create_webhook.value().get(), |i: &Issued<WebhookView>| {
            view! {
                <p class="issued" role="status">
                    {format!("Webhook {} added. Its signing secret, shown this once: ", i.item.id)}
                    <code data-testid="issued-secret">{i.secret.clone()}</code>
                </p>
            }
            .into_any()
        })
    };
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
            {result}
            <ActionForm action=create_webhook attr:class="action-form">
                <label>"URL" <input name="url" type="url" required=true placeholder="https://relay.example.com/rampart"/></label>
                <label>"Description" <input name="description" placeholder="#upload-rollout channel"/></label>
                <fieldset><legend>"Events (none ticked: every event)"</legend>{event_boxes}</fieldset>
                <button type="submit" class="primary">"Add webhook"</button>
            </ActionForm>
        </section>
    }
}
