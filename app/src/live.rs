//! Live updates in the browser: an `EventSource` on the rollout's change stream bumps a counter
//! that the page's snapshot resource depends on, so every change (someone else's command, the
//! guard loop, new metrics) refetches the page within a second. The browser reconnects by
//! itself after a server restart, and the page refetches when it does.

use leptos::prelude::*;

/// A counter that moves whenever rollout `rollout_id` changes (browser only; on the server it
/// never moves). The stream closes with the page.
pub fn changes(rollout_id: Signal<Option<i64>>) -> ReadSignal<u64> {
    let (count, set_count) = signal(0u64);
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsCast;
        use wasm_bindgen::closure::Closure;
        let source = StoredValue::new_local(None::<(i64, web_sys::EventSource)>);
        Effect::new(move |_| {
            let Some(id) = rollout_id.get() else { return };
            if source.with_value(|s| s.as_ref().map(|(open, _)| *open) == Some(id)) {
                return;
            }
            source.update_value(|s| {
                if let Some((_, old)) = s.take() {
                    old.close();
                }
            });
            let Ok(stream) = web_sys::EventSource::new(&format!("/api/v1/rollouts/{id}/live")) else { return };
            let bump = Closure::<dyn Fn()>::new(move || set_count.update(|n| *n += 1));
            let _ = stream.add_event_listener_with_callback("changed", bump.as_ref().unchecked_ref());
            // `hello` arrives on every connect; after the first one it means the stream was
            // lost and is back, so whatever happened meanwhile is fetched.
            let connected = std::cell::Cell::new(false);
            let hello = Closure::<dyn Fn()>::new(move || {
                if connected.replace(true) {
                    set_count.update(|n| *n += 1);
                }
            });
            let _ = stream.add_event_listener_with_callback("hello", hello.as_ref().unchecked_ref());
            // The listeners live as long as the page: the stream is closed on cleanup.
            bump.forget();
            hello.forget();
            source.set_value(Some((id, stream)));
        });
        on_cleanup(move || {
            source.update_value(|s| {
                if let Some((_, stream)) = s.take() {
                    stream.close();
                }
            })
        });
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (rollout_id, set_count);
    count
}
