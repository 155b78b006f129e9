//! Who is signed in, in the top bar, with sign-out (here, or on every device).

use crate::domain::access::{Permission, Principal};
use leptos::prelude::*;

#[component]
pub fn AccountMenu(you: Principal) -> impl IntoView {
    let admin = you.may(Permission::ManageUsers);
    match you {
        Principal::User { name, role, .. } => {
            view! {
                <div class="account" data-testid="account">
                    {admin.then(|| view! { <a href="/admin">"Admin"</a> })}
                    <span>{name}" · "<span class="role">{role.as_str()}</span></span>
                    <form method="post" action="/auth/logout"><button type="submit" class="link">"Sign out"</button></form>
                    <form method="post" action="/auth/logout?everywhere=true">
                        <button type="submit" class="link" title="End every session of this account, on every device">"Sign out everywhere"</button>
                    </form>
                </div>
            }
            .into_any()
        }
        Principal::ShareLink { .. } => view! { <span class="account muted">"Shared read-only view"</span> }.into_any(),
        _ => view! { <a class="account" href="/login">"Sign in"</a> }.into_any(),
    }
}
