//! The log: `tracing` events on stderr, one line each, with a level that `synwall run` can change
//! on reload (`RUST_LOG`, when set, overrides the configured level).
//!
//! It is the daemon's one stream: every event is logged once, here, machine-readable lines
//! included. Those are the lifecycle events (target [`LIFECYCLE`]: `ready ...`, `reloaded ...`,
//! `reload refused ...`, `stopped ...`), logged whatever the level, since supervisors and tests
//! follow them; each is its message followed by `key=value` fields.
//!
//! Under systemd (stderr is the journal: `$JOURNAL_STREAM` names its device and inode) a line is
//! `<N>message fields`: the journal stamps the time itself and takes `N` as the syslog priority,
//! so `journalctl -p warning` finds warnings and errors. Elsewhere: `TIME LEVEL message fields`.

use std::fmt;
use std::sync::OnceLock;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{
    filter::EnvFilter, layer::SubscriberExt, reload, util::SubscriberInitExt,
};

/// The target of lifecycle events (always logged).
pub const LIFECYCLE: &str = "synwall::lifecycle";

type Handle = reload::Handle<EnvFilter, tracing_subscriber::Registry>;

static HANDLE: OnceLock<Handle> = OnceLock::new();

fn filter(level: &str) -> EnvFilter {
    let env = std::env::var("RUST_LOG").ok();
    let mut f = env
        .as_deref()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| EnvFilter::new(level));
    for d in [format!("{LIFECYCLE}=info"), "tiny_http=off".to_string()] {
        // tiny_http's accept thread logs an error when its listener is closed, which is how the
        // metrics server stops (metrics.rs reports a real accept failure itself). An explicit
        // RUST_LOG directive for it wins.
        if d.starts_with("tiny_http") && env.as_deref().is_some_and(|e| e.contains("tiny_http")) {
            continue;
        }
        f = f.add_directive(d.parse().expect("a valid directive"));
    }
    f
}

/// The syslog priority of a level (sd-daemon(3): `<3>` error ... `<7>` debug).
fn priority(level: Level) -> u8 {
    match level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

/// `<N>message fields`, for the journal.
struct Journal;

impl<S, N> FormatEvent<S, N> for Journal
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        write!(w, "<{}>", priority(*event.metadata().level()))?;
        ctx.format_fields(w.by_ref(), event)?;
        writeln!(w)
    }
}

/// Is stderr the journal? systemd sets `JOURNAL_STREAM=DEV:INO` for a unit whose stderr it
/// connects to the journal; a child that redirected stderr elsewhere inherits the variable, so
/// the descriptor must still match.
fn stderr_is_journal() -> bool {
    let Some((dev, ino)) = std::env::var("JOURNAL_STREAM").ok().and_then(|v| {
        let (d, i) = v.split_once(':')?;
        Some((d.parse::<u64>().ok()?, i.parse::<u64>().ok()?))
    }) else {
        return false;
    };
    // SAFETY: fstat on stderr into a zeroed out-struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::fstat(libc::STDERR_FILENO, &mut st) };
    r == 0 && st.st_dev == dev && st.st_ino == ino
}

/// Install the subscriber (once; later calls only set the level).
pub fn init(level: &str) {
    if HANDLE.get().is_some() {
        set_level(level);
        return;
    }
    let (layer, handle) = reload::Layer::new(filter(level));
    let journal = stderr_is_journal();
    let plain = (!journal).then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_target(false)
    });
    let journal = journal.then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .event_format(Journal)
    });
    if tracing_subscriber::registry()
        .with(layer)
        .with(plain)
        .with(journal)
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
