//! A moment in the viewer's own time zone. The server cannot know the zone, so it renders UTC;
//! once the page is hydrated the browser re-renders the same moment in local time (the
//! `datetime` attribute and the tooltip keep the exact UTC instant).

use crate::domain::units::Timestamp;
use crate::format;
use leptos::prelude::*;

#[component]
pub fn LocalTime(at: Timestamp) -> impl IntoView {
    let hydrated = RwSignal::new(false);
    // Effects run only in the browser, after hydration, so the first render matches the server's.
    Effect::new(move |_| hydrated.set(true));
    let utc = format::utc_minute(at);
    let text = {
        let utc = utc.clone();
        move || if hydrated.get() { local_minute(at).unwrap_or_else(|| utc.clone()) } else { utc.clone() }
    };
    view! { <time datetime=format::iso(at) title=utc>{text}</time> }
}

/// `22 Nov 2026, 15:03 CET` in the browser's locale and zone.
#[cfg(feature = "hydrate")]
fn local_minute(at: Timestamp) -> Option<String> {
    use wasm_bindgen::JsValue;
    let date = js_sys::Date::new(&JsValue::from_f64(at.millis() as f64));
    let options = js_sys::Object::new();
    for (key, value) in
        [("year", "numeric"), ("month", "short"), ("day", "numeric"), ("hour", "2-digit"), ("minute", "2-digit"), ("timeZoneName", "short")]
    {
        js_sys::Reflect::set(&options, &JsValue::from_str(key), &JsValue::from_str(value)).ok()?;
    }
    date.to_locale_string("default", &options).as_string()
}

#[cfg(not(feature = "hydrate"))]
fn local_minute(_: Timestamp) -> Option<String> {
    None
}
