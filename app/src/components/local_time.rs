//! A moment in the viewer's own time zone. The server cannot know the zone, so it renders UTC;
//! the page's `Live` island rewrites every `time[data-local]` in local time once it runs (the
//! `datetime` attribute and the tooltip keep the exact UTC instant).

use crate::domain::units::Timestamp;
use crate::format;
use leptos::prelude::*;

#[component]
pub fn LocalTime(at: Timestamp) -> impl IntoView {
    let utc = format::utc_minute(at);
    view! { <time datetime=format::iso(at) title=utc.clone() data-local="">{utc.clone()}</time> }
}
