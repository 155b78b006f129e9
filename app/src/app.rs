//! The application shell and its routes.

use crate::api::who_am_i;
use crate::components::account::AccountMenu;
use crate::domain::access::Principal;
use crate::live::Live;
use crate::pages::admin::AdminPage;
use crate::pages::control_room::ControlRoomPage;
use crate::pages::login::LoginPage;
use crate::pages::overview::OverviewPage;
use crate::pages::plan::PlanPage;
use crate::pages::status::StatusPage;
use crate::you::You;
use leptos::prelude::*;
use leptos_meta::{MetaTags, Stylesheet, Title, provide_meta_context};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::{SsrMode, path};

/// The HTML document the server renders whole (`SsrMode::Async`: no streamed fragments, so a
/// page fetched again by [`Live`] reads as the page did). Only `Live` and the islands inside
/// pages run in the browser.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <link rel="icon" href="/favicon.svg" type="image/svg+xml"/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options islands=true/>
                <MetaTags/>
            </head>
            <body>
                <App/>
                <Live/>
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    let you = Resource::new(|| (), |_| who_am_i());
    provide_context(You(you));
    view! {
        <Stylesheet id="leptos" href="/pkg/rampart.css"/>
        <Title text="Rampart"/>
        <Router>
            <header class="topbar">
                <a class="brand" href="/">"Rampart"</a>
                <span class="tagline">"staged rollouts"</span>
                <nav class="topnav" aria-label="Main">
                    <a href="/">"Control room"</a>
                    <a href="/rollouts">"Rollouts"</a>
                    <a href="/status">"Status"</a>
                    <Suspense fallback=|| ()>
                        {move || Suspend::new(async move {
                            let you = you.await.unwrap_or(Principal::Anonymous);
                            view! { <AccountMenu you/> }
                        })}
                    </Suspense>
                </nav>
            </header>
            <main>
                <Routes fallback=|| view! { <p class="notice">"No such page."</p> }>
                    <Route path=path!("/") view=ControlRoomPage ssr=SsrMode::Async/>
                    <Route path=path!("/rollouts") view=OverviewPage ssr=SsrMode::Async/>
                    <Route path=path!("/rollouts/:id") view=ControlRoomPage ssr=SsrMode::Async/>
                    <Route path=path!("/rollouts/:id/plan") view=PlanPage ssr=SsrMode::Async/>
                    <Route path=path!("/plan") view=PlanPage ssr=SsrMode::Async/>
                    <Route path=path!("/status") view=StatusPage ssr=SsrMode::Async/>
                    <Route path=path!("/status/:id") view=StatusPage ssr=SsrMode::Async/>
                    <Route path=path!("/login") view=LoginPage ssr=SsrMode::Async/>
                    <Route path=path!("/admin") view=AdminPage ssr=SsrMode::Async/>
                </Routes>
            </main>
        </Router>
    }
}
