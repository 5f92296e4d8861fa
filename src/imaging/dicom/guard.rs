//! Third-party codecs can panic on corrupt data. A decode runs inside [`catch_codec_panic`], which
//! turns such a panic into an error and keeps the panic message off the user's terminal.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Once;

thread_local! {
    static GUARDED: Cell<bool> = const { Cell::new(false) };
}

fn install_quiet_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if GUARDED.with(Cell::get) {
                log::debug!("codec panic (turned into an error): {info}");
            } else {
                default_hook(info);
            }
        }));
    });
}

/// Runs `f`; a panic inside it comes back as `Err` with the panic's message.
pub(crate) fn catch_codec_panic<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    install_quiet_hook();
    let was_guarded = GUARDED.with(|g| g.replace(true));
    let result = catch_unwind(AssertUnwindSafe(f));
    GUARDED.with(|g| g.set(was_guarded));
    result.map_err(|payload| crate::panic_message(payload.as_ref()).unwrap_or_else(|| "the decoder crashed".to_string()))
}
