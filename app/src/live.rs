//! The page's one island: everything the browser adds to a page the server has rendered whole.
//!
//! Rampart's pages are rendered on the server (Leptos islands): the HTML is the page, readable
//! and usable without JavaScript — its forms post to the server functions, which answer a plain
//! form with a redirect back. [`Live`] is the only part hydrated in the browser, so the WASM
//! carries this file and little else. Once it runs it
//!
//! - **keeps the page live**: on the rollout's change stream (`/api/v1/rollouts/{id}/live`,
//!   named by the page's `data-live-rollout`) it fetches the page again and swaps each region
//!   (`data-live="…"`) whose server HTML changed; a region that did not change keeps its DOM, so
//!   a reason half typed in a form there survives someone else's tick;
//! - **posts forms without leaving the page**: a form posting to a server function (`/api/…`) is
//!   sent with `fetch`; a button's `data-confirm` asks first; a refusal is shown in its region's
//!   `data-error` slot, a secret the form made (a form marked `data-shows-issued`) in its
//!   `data-issued` slot, and a form marked `data-shows-done` unhides its `data-done` slot — each
//!   kept through the refreshes until the region's next form; success resets the form and
//!   refreshes the page; a form already on its way is not sent twice;
//! - **ticks checklist items** (`input[data-item]`, enabled here: `data-waits`) at once, keeping
//!   the box as clicked until a page fetched after the server saved the tick is on show;
//! - **switches the charts' range** (`a[data-swap]`) by fetching the page for the new URL;
//! - **shows times in the viewer's zone** (`time[data-local]`; the server renders UTC);
//! - keeps the focus on the control a person is on when its region is swapped;
//! - marks `<body data-hydrated="true">` when clicks are handled (browser tests wait for it).

use leptos::prelude::*;

/// Rendered once at the end of every page; hydrated last, after any other island.
#[island]
pub fn Live() -> impl IntoView {
    #[cfg(feature = "hydrate")]
    browser::start();
}

#[cfg(feature = "hydrate")]
mod browser {
    use crate::error::AppError;
    use std::cell::{Cell, RefCell};
    use std::collections::HashMap;
    use wasm_bindgen::closure::Closure;
    use wasm_bindgen::{JsCast, JsValue};
    use wasm_bindgen_futures::{JsFuture, spawn_local};
    use web_sys::{Document, Element, HtmlFormElement, HtmlInputElement};

    /// What the page knows between events (the browser runs one thread).
    #[derive(Default)]
    struct Page {
        /// Each region's server HTML as last put on show, to swap only what changed.
        shown: RefCell<HashMap<String, String>>,
        /// What each region's slots show after its last form (`data-error`, `data-issued`,
        /// `data-done`), kept through the refreshes until its next form is sent.
        kept: RefCell<HashMap<String, Vec<(&'static str, String)>>>,
        /// Moves whenever the server saved something this page sent: a page fetched before
        /// it moved may not show it yet, and is fetched again.
        saves: Cell<u64>,
        /// Requests this page sent that have not been answered.
        pending: Cell<u32>,
        refreshing: Cell<bool>,
        again: Cell<bool>,
    }

    thread_local! {
        static PAGE: Page = Page::default();
    }

    fn document() -> Document {
        leptos::prelude::document()
    }

    pub fn start() {
        let doc = document();
        PAGE.with(|page| {
            let mut shown = page.shown.borrow_mut();
            for region in all(&doc, "[data-live]") {
                shown.insert(key(&region), region.outer_html());
            }
        });
        let root: web_sys::Node = doc.into();
        localise(&root);
        enable(&root);
        forget_the_form_redirect(&root);
        listen("submit", |ev| on_submit(ev.unchecked_into()));
        listen("change", on_change);
        listen("input", on_input);
        listen("click", on_click);
        listen("keydown", on_key);
        if let Some(id) = document().query_selector("[data-live-rollout]").ok().flatten().and_then(|e| e.get_attribute("data-live-rollout"))
        {
            stream(&id);
        }
        if let Some(body) = document().body() {
            let _ = body.set_attribute("data-hydrated", "true");
        }
    }

    /// A page a form sent without this island came back to carries the refusal in its address
    /// (`__path`, `__err`): the refusal on show is kept like one this island showed, and the
    /// address loses it, so that the page fetched again does not say it once more.
    fn forget_the_form_redirect(root: &web_sys::Node) {
        let location = leptos::prelude::window().location();
        let Ok(url) = location.href().and_then(|href| web_sys::Url::new(&href)) else { return };
        if !url.search_params().has("__err") {
            return;
        }
        for slot in all(root, "p[data-error]:not([hidden])") {
            if let (Some(region), Some(text)) = (region_of(&slot), slot.text_content()) {
                PAGE.with(|page| page.kept.borrow_mut().entry(key(&region)).or_default().push(("data-error", text)));
            }
        }
        url.search_params().delete("__err");
        url.search_params().delete("__path");
        if let Ok(history) = leptos::prelude::window().history() {
            let _ = history.replace_state_with_url(&JsValue::NULL, "", Some(&url.href()));
        }
    }

    fn listen(event: &str, handler: fn(web_sys::Event)) {
        let handler = Closure::<dyn Fn(web_sys::Event)>::new(handler);
        let _ = document().add_event_listener_with_callback(event, handler.as_ref().unchecked_ref());
        // The listeners live as long as the page.
        handler.forget();
    }

    fn all(root: &web_sys::Node, selector: &str) -> Vec<Element> {
        let list = match root.dyn_ref::<Document>() {
            Some(doc) => doc.query_selector_all(selector),
            None => root.unchecked_ref::<Element>().query_selector_all(selector),
        };
        let Ok(list) = list else { return Vec::new() };
        (0..list.length()).filter_map(|i| list.item(i)?.dyn_into::<Element>().ok()).collect()
    }

    fn key(region: &Element) -> String {
        region.get_attribute("data-live").unwrap_or_default()
    }

    /// The rollout's change stream: every change, and every reconnect after the first connect
    /// (whatever happened meanwhile), refreshes the page.
    fn stream(rollout_id: &str) {
        let Ok(source) = web_sys::EventSource::new(&format!("/api/v1/rollouts/{rollout_id}/live")) else { return };
        let changed = Closure::<dyn Fn()>::new(refresh);
        let connected = Cell::new(false);
        let hello = Closure::<dyn Fn()>::new(move || {
            if connected.replace(true) {
                refresh();
            }
        });
        let _ = source.add_event_listener_with_callback("changed", changed.as_ref().unchecked_ref());
        let _ = source.add_event_listener_with_callback("hello", hello.as_ref().unchecked_ref());
        changed.forget();
        hello.forget();
    }

    /// Fetches the page again and swaps the regions that changed. Refreshes asked for while one
    /// runs make one more; a page fetched while this page's requests were on their way, or
    /// before a save it made, is thrown away (the save's own refresh follows).
    pub fn refresh() {
        let busy = PAGE.with(|page| {
            let busy = page.refreshing.replace(true);
            page.again.set(busy);
            busy
        });
        if busy {
            return;
        }
        spawn_local(async {
            loop {
                PAGE.with(|page| page.again.set(false));
                let saves = PAGE.with(|page| page.saves.get());
                let html = fetch_page().await;
                let current = PAGE.with(|page| page.pending.get() == 0 && page.saves.get() == saves);
                if let (Some(html), true) = (html, current) {
                    swap(&html);
                }
                if !PAGE.with(|page| page.again.get()) {
                    break;
                }
            }
            PAGE.with(|page| page.refreshing.set(false));
        });
    }

    /// `fetch(url)` with `headers` (and, for a POST, `body`): the response, or `None` when no
    /// answer came (within `limit_ms`, if given: the request is then abandoned).
    async fn fetch(url: &str, headers: &[(&str, &str)], body: Option<&str>, limit_ms: Option<u32>) -> Option<web_sys::Response> {
        let init = web_sys::RequestInit::new();
        if let Some(limit) = limit_ms {
            init.set_signal(Some(&web_sys::AbortSignal::timeout_with_u32(limit)));
        }
        let sent = web_sys::Headers::new().ok()?;
        for (name, value) in headers {
            sent.set(name, value).ok()?;
        }
        init.set_headers(&sent);
        if let Some(body) = body {
            init.set_method("POST");
            init.set_body(&JsValue::from_str(body));
        }
        JsFuture::from(leptos::prelude::window().fetch_with_str_and_init(url, &init)).await.ok()?.dyn_into().ok()
    }

    /// A response's body as text (empty when it cannot be read).
    async fn text(response: &web_sys::Response) -> String {
        match response.text() {
            Ok(promise) => JsFuture::from(promise).await.ok().and_then(|t| t.as_string()).unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// How long a refresh waits for the page (a page is made in tens of milliseconds).
    const REFRESH_LIMIT_MS: u32 = 5_000;

    async fn fetch_page() -> Option<String> {
        let window = leptos::prelude::window();
        let href = window.location().href().ok()?;
        // `X-Rampart-Refresh` lets the server (and a browser test) tell a refresh from a navigation.
        // A refresh that gets no answer is given up, never waited on for ever: the refresh loop
        // would wait with it, and every change after it would go unseen (a page showed a
        // baseline frozen before another one, stuck behind one request that never returned).
        let response = fetch(&href, &[("Accept", "text/html"), ("X-Rampart-Refresh", "1")], None, Some(REFRESH_LIMIT_MS)).await?;
        // Sent elsewhere (the session ended: the sign-in page): the page follows, whole.
        if response.redirected() {
            let _ = window.location().reload();
            return None;
        }
        // A page that could not be made (the database unavailable for a moment) answers with
        // the error's status: this page stays as it is, and the next change tries again.
        if !response.ok() {
            return None;
        }
        Some(text(&response).await)
    }

    /// Puts the fetched page's changed regions on show. A page without regions (one that could
    /// not be made) changes nothing; when the regions are not the same set, or belong to another
    /// rollout (a newer one at `/`), the page is loaded whole.
    fn swap(html: &str) {
        let Ok(parser) = web_sys::DomParser::new() else { return };
        let Ok(fresh) = parser.parse_from_string(html, web_sys::SupportedType::TextHtml) else { return };
        let doc = document();
        let regions = all(&fresh.clone().into(), "[data-live]");
        if regions.is_empty() {
            return;
        }
        let rollout =
            |d: &Document| d.query_selector("[data-live-rollout]").ok().flatten().and_then(|e| e.get_attribute("data-live-rollout"));
        let same = rollout(&doc) == rollout(&fresh) && {
            let mut old: Vec<String> = all(&doc.clone().into(), "[data-live]").iter().map(key).collect();
            let mut new: Vec<String> = regions.iter().map(key).collect();
            old.sort();
            new.sort();
            old == new
        };
        if !same {
            let _ = leptos::prelude::window().location().reload();
            return;
        }
        for region in regions {
            let name = key(&region);
            let html = region.outer_html();
            if PAGE.with(|page| page.shown.borrow().get(&name) == Some(&html)) {
                continue;
            }
            let Some(old) = doc.query_selector(&format!("[data-live=\"{name}\"]")).ok().flatten() else { continue };
            let Ok(node) = doc.import_node_with_deep(&region, true) else { continue };
            // The control a person is on (the box just ticked, the range just picked) keeps the
            // focus through the swap.
            let focused = doc.active_element().filter(|a| old.contains(Some(a))).and_then(|a| same_control(&a));
            let _ = old.replace_with_with_node_1(&node);
            PAGE.with(|page| page.shown.borrow_mut().insert(name.clone(), html));
            localise(&node);
            enable(&node);
            if let Some(control) = focused.and_then(|selector| node.unchecked_ref::<Element>().query_selector(&selector).ok().flatten()) {
                let _ = control.unchecked_ref::<web_sys::HtmlElement>().focus();
            }
            let kept = PAGE.with(|page| page.kept.borrow().get(&name).cloned()).unwrap_or_default();
            for (slot, text) in kept {
                fill(node.unchecked_ref(), slot, &text);
            }
        }
    }

    /// A selector for the same control in a fresh copy of its region: its checklist item, its
    /// test id, its id, or its link's address.
    fn same_control(element: &Element) -> Option<String> {
        let attribute = |name: &str| element.get_attribute(name).filter(|v| !v.contains('"'));
        let tag = element.tag_name().to_ascii_lowercase();
        attribute("data-item")
            .map(|v| format!(r#"{tag}[data-item="{v}"]"#))
            .or_else(|| attribute("data-testid").map(|v| format!(r#"{tag}[data-testid="{v}"]"#)))
            .or_else(|| attribute("id").map(|v| format!(r#"{tag}[id="{v}"]"#)))
            .or_else(|| attribute("href").map(|v| format!(r#"{tag}[href="{v}"]"#)))
    }

    fn region_of(element: &Element) -> Option<Element> {
        element.closest("[data-live]").ok().flatten()
    }

    /// Shows the region's `slot` with `text` in it (an empty text keeps the server's), and keeps
    /// it through refreshes. A secret's slot says its `data-intro` first, then the secret (a
    /// link when it is an address).
    fn show(region: &Element, slot: &'static str, text: &str) {
        fill(region, slot, text);
        PAGE.with(|page| page.kept.borrow_mut().entry(key(region)).or_default().push((slot, text.to_string())));
    }

    fn fill(region: &Element, slot: &str, text: &str) {
        let Some(element) = region.query_selector(&format!("p[{slot}]")).ok().flatten() else { return };
        if let Some(intro) = element.get_attribute("data-intro") {
            let doc = document();
            let link = text.starts_with("http");
            let Ok(secret) = doc.create_element(if link { "a" } else { "code" }) else { return };
            secret.set_text_content(Some(text));
            let _ = secret.set_attribute("data-testid", "issued-secret");
            if link {
                let _ = secret.set_attribute("href", text);
            }
            element.set_text_content(Some(&format!("{intro} ")));
            let _ = element.append_child(&secret);
        } else if !text.is_empty() {
            element.set_text_content(Some(text));
        }
        let _ = element.remove_attribute("hidden");
    }

    /// Hides every slot of the region: a new form was sent from it.
    fn clear(region: &Element) {
        PAGE.with(|page| page.kept.borrow_mut().remove(&key(region)));
        for slot in all(&region.clone().into(), "p[data-error], p[data-issued], p[data-done]") {
            let _ = slot.set_attribute("hidden", "");
            if slot.has_attribute("data-intro") {
                slot.set_text_content(None);
            }
        }
    }

    /// A field of a `form[data-swap]` (GET): the page for the form's query is swapped in as it
    /// is typed, the address kept in the history.
    fn on_input(ev: web_sys::Event) {
        let Some(form) = ev.target().and_then(|t| t.dyn_into::<Element>().ok()).and_then(|e| e.closest("form[data-swap]").ok().flatten())
        else {
            return;
        };
        swap_to_form(form.unchecked_ref());
    }

    fn swap_to_form(form: &HtmlFormElement) {
        let Ok(data) = web_sys::FormData::new_with_form(form) else { return };
        let Ok(query) = web_sys::UrlSearchParams::new_with_str_sequence_sequence(&data) else { return };
        go(&format!("?{}", String::from(query.to_string())));
    }

    /// Puts `href` in the address bar (replacing the entry) and swaps in its page.
    fn go(href: &str) {
        if let Ok(history) = leptos::prelude::window().history() {
            let _ = history.replace_state_with_url(&JsValue::NULL, "", Some(href));
        }
        refresh();
    }

    /// A form that posts to a server function: asked to confirm when its button says so, then
    /// sent without leaving the page. A `form[data-swap]` is swapped in instead of loaded.
    fn on_submit(ev: web_sys::SubmitEvent) {
        let Some(form) = ev.target().and_then(|t| t.dyn_into::<HtmlFormElement>().ok()) else { return };
        if form.has_attribute("data-swap") {
            ev.prevent_default();
            swap_to_form(&form);
            return;
        }
        let action = form.get_attribute("action").unwrap_or_default();
        // An island's own forms (the plan checker's) are its to send.
        if !action.starts_with("/api/") || ev.default_prevented() || form.closest("leptos-island").ok().flatten().is_some() {
            return;
        }
        ev.prevent_default();
        let question = ev.submitter().and_then(|b| b.get_attribute("data-confirm"));
        if let Some(question) = question {
            if !leptos::prelude::window().confirm_with_message(&question).unwrap_or(false) {
                return;
            }
        }
        let buttons = all(&form.clone().into(), "button");
        // On its way already (a double click): one command, one token, not two.
        if buttons.iter().any(|b| b.has_attribute("aria-busy")) {
            return;
        }
        let Ok(data) = web_sys::FormData::new_with_form(&form) else { return };
        let Ok(body) = web_sys::UrlSearchParams::new_with_str_sequence_sequence(&data) else { return };
        for b in &buttons {
            let _ = b.set_attribute("aria-busy", "true");
        }
        let region = region_of(&form);
        if let Some(region) = &region {
            clear(region);
        }
        spawn_local(async move {
            let answer = post(&action, &String::from(body.to_string())).await;
            for b in &buttons {
                let _ = b.remove_attribute("aria-busy");
            }
            match (answer, &region) {
                (Ok(answer), Some(region)) => {
                    if form.has_attribute("data-shows-done") {
                        show(region, "data-done", "");
                    }
                    // A secret made by the form ({"item": …, "secret": "…"}), shown this once.
                    let secret = serde_json::from_str::<Made>(&answer).map(|made| made.secret).unwrap_or_default();
                    if let (Some(prefix), false) = (form.get_attribute("data-shows-issued"), secret.is_empty()) {
                        let text = match prefix.is_empty() {
                            true => secret,
                            false => format!("{}{prefix}{secret}", leptos::prelude::window().location().origin().unwrap_or_default()),
                        };
                        show(region, "data-issued", &text);
                    }
                    form.reset();
                }
                (Ok(_), None) => form.reset(),
                (Err(error), region) => {
                    if let Some(region) = region {
                        show(region, "data-error", &error.for_the_form());
                    }
                }
            }
            refresh();
        });
    }

    /// The part of a create form's answer the page shows.
    #[derive(serde::Deserialize)]
    struct Made {
        secret: String,
    }

    /// A checklist box: saved at once; the box keeps the click until a page fetched after the
    /// save is on show (or the save fails, and it flips back with the reason).
    fn on_change(ev: web_sys::Event) {
        let Some(input) = ev.target().and_then(|t| t.dyn_into::<HtmlInputElement>().ok()) else { return };
        let (Some(rollout), Some(item)) = (input.get_attribute("data-rollout"), input.get_attribute("data-item")) else { return };
        let checked = input.checked();
        let body = format!("rollout_id={rollout}&item_id={item}&checked={checked}");
        let region = region_of(&input);
        if let Some(region) = &region {
            clear(region);
        }
        spawn_local(async move {
            if let Err(error) = post("/api/set_checklist_item", &body).await {
                input.set_checked(!checked);
                if let Some(region) = &region {
                    show(region, "data-error", &error.for_the_form());
                }
            }
            refresh();
        });
    }

    /// A link that changes what a region shows (the charts' range): the page for its URL is
    /// fetched and swapped in, the address kept in the history.
    fn on_click(ev: web_sys::Event) {
        // A click that opens a tab or a window is the browser's.
        if let Some(mouse) = ev.dyn_ref::<web_sys::MouseEvent>()
            && (mouse.button() != 0 || mouse.ctrl_key() || mouse.meta_key() || mouse.shift_key() || mouse.alt_key())
        {
            return;
        }
        let Some(link) = ev.target().and_then(|t| t.dyn_into::<Element>().ok()).and_then(|e| e.closest("a[data-swap]").ok().flatten())
        else {
            return;
        };
        let Some(href) = link.get_attribute("href") else { return };
        ev.prevent_default();
        go(&href);
    }

    /// Space on a link that acts as a button (`a[role="button"][data-swap]`: the charts' range)
    /// presses it, as it would a button.
    fn on_key(ev: web_sys::Event) {
        let Some(key) = ev.dyn_ref::<web_sys::KeyboardEvent>().map(|k| k.key()) else { return };
        let target = ev.target().and_then(|t| t.dyn_into::<Element>().ok());
        let Some(link) = target.filter(|e| key == " " && e.matches(r#"a[role="button"][data-swap]"#).unwrap_or(false)) else { return };
        ev.prevent_default();
        if let Some(href) = link.get_attribute("href") {
            go(&href);
        }
    }

    /// Posts a form's fields to a server function as a script would (JSON back, not a
    /// redirect): its answer, or the server's refusal as the app's error.
    async fn post(url: &str, body: &str) -> Result<String, AppError> {
        PAGE.with(|page| page.pending.set(page.pending.get() + 1));
        let answer = send(url, body).await;
        PAGE.with(|page| {
            page.pending.set(page.pending.get() - 1);
            if answer.is_ok() {
                page.saves.set(page.saves.get() + 1);
            }
        });
        answer
    }

    async fn send(url: &str, body: &str) -> Result<String, AppError> {
        let transport = |message: &str| AppError::Transport { message: message.to_string() };
        let headers = [("Content-Type", "application/x-www-form-urlencoded"), ("Accept", "application/json")];
        let response = fetch(url, &headers, Some(body), None).await.ok_or_else(|| transport("the server could not be reached"))?;
        let text = text(&response).await;
        if response.ok() {
            return Ok(text);
        }
        Err(serde_json::from_str::<AppError>(&text).unwrap_or_else(|_| transport(&format!("the server answered {}", response.status()))))
    }

    /// The checklist boxes under `root` the caller may tick: the server renders them disabled,
    /// since a tick before this island runs would not be saved.
    fn enable(root: &web_sys::Node) {
        for input in all(root, "input[data-waits]") {
            let _ = input.remove_attribute("disabled");
        }
    }

    /// Every `time[data-local]` under `root` in the viewer's zone (the server wrote UTC; the
    /// `datetime` attribute and the tooltip keep the exact instant).
    fn localise(root: &web_sys::Node) {
        for time in all(root, "time[data-local]") {
            let Some(at) = time.get_attribute("datetime") else { continue };
            let date = js_sys::Date::new(&JsValue::from_str(&at));
            if date.get_time().is_nan() {
                continue;
            }
            let options = js_sys::Object::new();
            for (key, value) in [
                ("year", "numeric"),
                ("month", "short"),
                ("day", "numeric"),
                ("hour", "2-digit"),
                ("minute", "2-digit"),
                ("timeZoneName", "short"),
            ] {
                let _ = js_sys::Reflect::set(&options, &JsValue::from_str(key), &JsValue::from_str(value));
            }
            if let Some(text) = date.to_locale_string("default", &options).as_string() {
                time.set_text_content(Some(&text));
            }
        }
    }
}
