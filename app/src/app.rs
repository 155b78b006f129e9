//! The application shell and its routes.

use crate::pages::control_room::ControlRoomPage;
use crate::pages::status::StatusPage;
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
    view! {
        <Stylesheet id="leptos" href="/pkg/rampart.css"/>
        <Title text="Rampart"/>
        <Router>
            <header class="topbar">
                <a class="brand" href="/">"Rampart"</a>
                <span class="tagline">"staged rollouts"</span>
                <nav class="topnav"><a href="/">"Control room"</a> <a href="/status">"Status"</a></nav>
            </header>
            <main>
                <Routes fallback=|| view! { <p class="notice">"No such page."</p> }>
                    <Route path=path!("/") view=ControlRoomPage/>
                    <Route path=path!("/rollouts/:id") view=ControlRoomPage/>
                    // Rendered whole on the server, so it reads the same with JavaScript off.
                    <Route path=path!("/status") view=StatusPage ssr=SsrMode::Async/>
                    <Route path=path!("/status/:id") view=StatusPage ssr=SsrMode::Async/>
                </Routes>
            </main>
        </Router>
    }
}
