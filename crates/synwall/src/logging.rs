//! Structured logs (tracing) to stderr, with a level that `synwall run` can change on reload.
//! `RUST_LOG`, when set, overrides the configured level.

use std::sync::OnceLock;
use tracing_subscriber::{
    filter::EnvFilter, layer::SubscriberExt, reload, util::SubscriberInitExt,
};

type Handle = reload::Handle<EnvFilter, tracing_subscriber::Registry>;

static HANDLE: OnceLock<Handle> = OnceLock::new();

fn filter(level: &str) -> EnvFilter {
    std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| EnvFilter::new(level))
}

/// Install the subscriber (once; later calls only set the level).
pub fn init(level: &str) {
    if HANDLE.get().is_some() {
        set_level(level);
        return;
    }
    let (layer, handle) = reload::Layer::new(filter(level));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    if tracing_subscriber::registry()
        .with(layer)
        .with(fmt)
        .try_init()
        .is_ok()
    {
        let _ = HANDLE.set(handle);
    }
}

/// Change the level (on reload).
pub fn set_level(level: &str) {
    if let Some(h) = HANDLE.get() {
        let _ = h.reload(filter(level));
    }
}
