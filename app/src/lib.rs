//! Rampart's web UI (Leptos, rendered whole on the server; islands — [`live::Live`] and the plan
//! checker — run in the browser) and the pure rollout domain both sides share.
//!
//! `domain` holds the rules and does no I/O; `api` holds the server functions, whose bodies only
//! reach the [`services`] the server provides; `pages` and `components` are the views.

#![recursion_limit = "256"]

pub mod api;
mod app;
pub mod components;
pub mod domain;
pub mod error;
pub mod format;
pub mod live;
pub mod model;
pub mod pages;
#[cfg(feature = "ssr")]
pub mod services;
pub mod you;

pub use app::{App, shell};

/// The browser entry point. The pages are rendered on the server; the islands in them
/// (`#[island]`: [`live::Live`] on every page) are hydrated one by one after this returns.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_islands();
}
