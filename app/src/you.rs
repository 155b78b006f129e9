//! Who is signed in, as the page knows it: the shell loads it once per page load and provides
//! it; pages read it to enable what the caller may do. A leaf, so pages need not import the
//! shell that routes to them.

use crate::domain::access::Principal;
use crate::error::AppError;
use leptos::prelude::*;

/// The caller's principal, loaded once per page load.
#[derive(Clone, Copy)]
pub struct You(pub Resource<Result<Principal, AppError>>);

/// The caller, as far as the page knows (anonymous until loaded or when it failed).
pub async fn you() -> Principal {
    match use_context::<You>() {
        Some(You(resource)) => resource.await.unwrap_or(Principal::Anonymous),
        None => Principal::Anonymous,
    }
}
