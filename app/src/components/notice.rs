//! A page that could not be shown: the reason, where the page would be.

use crate::error::AppError;
use leptos::prelude::*;

/// The one markup of a page-level failure (the rollout, the lists, the status could not be
/// read): a notice screen readers announce. The page answers with the error's status, so that
/// an open page fetching itself again (`live.rs`) keeps what it shows.
#[component]
pub fn ErrorNotice(error: AppError) -> impl IntoView {
    #[cfg(feature = "ssr")]
    error.answer_with_status();
    view! { <p class="notice error" role="alert">{error.to_string()}</p> }
}
