//! Sign-in: a plain form posted to `/auth/login`, so it works before (and without) the WASM.
//! A refusal comes back as `?error=…` and is shown above the form.

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

#[component]
pub fn LoginPage() -> impl IntoView {
    let query = use_query_map();
    let error = move || query.read().get("error");
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
