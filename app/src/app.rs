//! The application shell and its routes.

use crate::api::who_am_i;
use crate::components::account::AccountMenu;
use crate::domain::access::Principal;
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

/// The HTML document the server streams; the browser hydrates `<App/>` inside it.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <link rel="icon" href="/favicon.svg" type="image/svg+xml"/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
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
                    <Route path=path!("/") view=ControlRoomPage/>
                    <Route path=path!("/rollouts") view=OverviewPage/>
                    <Route path=path!("/rollouts/:id") view=ControlRoomPage/>
                    <Route path=path!("/rollouts/:id/plan") view=PlanPage/>
                    <Route path=path!("/plan") view=PlanPage/>
                    // Rendered whole on the server, so it reads the same with JavaScript off.
                    <Route path=path!("/status") view=StatusPage ssr=SsrMode::Async/>
                    <Route path=path!("/status/:id") view=StatusPage ssr=SsrMode::Async/>
                    <Route path=path!("/login") view=LoginPage/>
                    <Route path=path!("/admin") view=AdminPage/>
                </Routes>
            </main>
        </Router>
    }
}
