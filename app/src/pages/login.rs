//! Sign-in: a plain form posted to `/auth/login`, so it works before (and without) the WASM.
//! A refusal comes back as `?error=CODE` (with `wait=SECONDS` when throttled) and its sentence
//! is shown above the form. Only Rampart's own sentences: a link cannot put words on this page.

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

/// The sentence for a refusal code of `/auth/login`; any other code gets a plain one.
pub fn login_message(code: &str, wait_secs: Option<u64>) -> String {
    match (code, wait_secs) {
        ("credentials", _) => "Wrong name or password.".into(),
        ("throttled", Some(secs)) => format!("Too many failed sign-ins: try again in {secs} s."),
        ("throttled", None) => "Too many failed sign-ins: try again later.".into(),
        ("busy", _) => "The server is busy checking other sign-ins: try again in a moment.".into(),
        _ => "Sign-in failed. Try again.".into(),
    }
}

#[component]
pub fn LoginPage() -> impl IntoView {
    let query = use_query_map();
    let error = move || {
        let query = query.read();
        query.get("error").map(|code| login_message(&code, query.get("wait").and_then(|w| w.parse().ok())))
    };
    let next = move || query.read().get("next").unwrap_or_else(|| "/".to_string());
    view! {
        <section class="card login" aria-labelledby="login-title">
            <h1 id="login-title">"Sign in to Rampart"</h1>
            {move || error().map(|e| view! { <p class="error" role="alert" data-testid="login-error">{e}</p> })}
            <form method="post" action="/auth/login">
                <input type="hidden" name="next" value=next/>
                <label>"Name" <input name="name" autocomplete="username" required=true autofocus=true/></label>
                <label>"Password" <input name="password" type="password" autocomplete="current-password" required=true/></label>
                <button type="submit" class="primary">"Sign in"</button>
            </form>
            <p class="muted">"Stakeholders can also open a share link an admin sends them."</p>
        </section>
    }
}
