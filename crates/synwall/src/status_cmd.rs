//! `synwall status [--json] [--watch] [--check]`: read a node's pinned maps (no daemon needed: it
//! works as long as the programs are attached) and show counters and rates, the salts and the
//! daemon's heartbeat; `--check` says in one line whether the node is fit to receive traffic.

use crate::daemon::{NodeArgs, RunFiles};
use crate::snapshot::Snapshot;
use crate::{snapshot, status_view};
use anyhow::Result;
use clap::Args;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use synwall_bpf::pin::NodePins;

#[derive(Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub node: NodeArgs,
    /// Print JSON (one object; with --watch, one per line). The schema is docs/STATUS_JSON.md.
    #[arg(long)]
    pub json: bool,
    /// Refresh every --interval seconds until interrupted or `q` is pressed (like `top`).
    #[arg(long)]
    pub watch: bool,
    /// Seconds between refreshes, 0.1 to 3600 (rates are computed over this interval).
    #[arg(long, default_value_t = 1.0, value_parser = interval)]
    pub interval: f64,
    /// Show counters that are zero too (each program's own: those it can increment).
    #[arg(long)]
    pub all: bool,
    /// Only say whether the node is fit to receive traffic, in one line: programs attached, the
    /// daemon alive (its heartbeat in the maps), salts for the current epoch and at least one
    /// more, the secret files readable (with --config, or the running daemon's config). Exit 0
    /// when it is, 1 when it is not.
    #[arg(long, conflicts_with_all = ["json", "watch", "all"])]
    pub check: bool,
}

fn interval(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.1..=3600.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?} is not a number of seconds from 0.1 to 3600")),
    }
}

pub fn run(a: StatusArgs) -> Result<ExitCode> {
    let node = a.node.resolve()?;
    let name = node.name;
    let pins = NodePins::new(&node.pin_root, &name);
    let state = RunFiles::new(&a.node.run_dir, &name).read_state();
    let period = node
        .epoch_seconds
        .or_else(|| state.as_ref()?.get("epoch_seconds")?.as_u64())
        .unwrap_or(0);
    // The secret files: from --config, else from the config file the running daemon named.
    let secrets = node.secrets.or_else(|| {
        let path = state.as_ref()?.get("config")?.as_str()?.to_string();
        let n = synwall_config::NodeConfig::load(std::path::Path::new(&path)).ok()?;
        Some(crate::daemon::secret_paths(&n.config.node))
    });
    let mut read = || snapshot::from_pins(&pins, &name, period, secrets.as_deref());
    if a.check {
        return Ok(match read() {
            Ok(s) => {
                let mut line = s.health.line();
                if s.health.healthy && !s.health.unchecked.is_empty() {
                    line.push_str(&format!(
                        " (not checked: {})",
                        s.health.unchecked.join(", ")
                    ));
                }
                println!("{line}");
                if s.health.healthy {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                }
            }
            Err(e) => {
                println!("unhealthy: {e:#}");
                ExitCode::from(1)
            }
        });
    }
    let mut keys = if a.watch {
        let stop = Arc::new(AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(sig, Arc::clone(&stop))?;
        }
        Keys::new(Box::new(std::io::stdin()), stop)
    } else {
        Keys::none()
    };
    show(
        &mut read,
        &a,
        &mut keys,
        &mut std::io::stdout().lock(),
        page_width,
    )
}

/// Print the readings `read` gives as `a` asks, on `out`, until done (one page) or told to stop
/// (`keys`, with --watch).
fn show(
    read: &mut dyn FnMut() -> Result<Snapshot>,
    a: &StatusArgs,
    keys: &mut Keys,
    out: &mut dyn Write,
    width: fn() -> usize,
) -> Result<ExitCode> {
    let interval = Duration::from_secs_f64(a.interval);
    if a.json && !a.watch {
        // One reading, at once (scripts): no rates, as the schema says.
        writeln!(out, "{}", status_view::render_json(&read()?, None))?;
        return Ok(ExitCode::SUCCESS);
    }
    // Pages and watched JSON have rates from the first: two readings, a short interval apart.
    let mut prev = read()?;
    if keys.wait(interval.min(Duration::from_secs(1))) {
        return Ok(ExitCode::SUCCESS);
    }
    loop {
        let cur = read()?;
        let text = if a.json {
            status_view::render_json(&cur, Some(&prev)).to_string() + "\n"
        } else {
            let page = status_view::render_text(&cur, Some(&prev), a.all, width());
            if a.watch {
                status_view::watch_frame(&page)
            } else {
                page
            }
        };
        if out
            .write_all(text.as_bytes())
            .and_then(|_| out.flush())
            .is_err()
        {
            return Ok(ExitCode::SUCCESS); // e.g. piped into `head`
        }
        if !a.watch || keys.wait(interval) {
            return Ok(ExitCode::SUCCESS);
        }
        prev = cur;
    }
}

/// The terminal's width when stdout is one, else [`status_view::WIDTH`].
fn page_width() -> usize {
    terminal_size::terminal_size_of(std::io::stdout())
        .map(|(w, _)| usize::from(w.0))
        .filter(|&w| w > 0)
        .unwrap_or(status_view::WIDTH)
}

/// Waiting between `--watch` frames: returns early when `q` is typed on the terminal or the stop
/// flag is set (SIGINT/SIGTERM). While it lives, a terminal input reads keys one at a time without
/// echo; dropping it (also on an early return or a panic) restores the terminal as it was.
struct Keys {
    /// The input and its settings before, to restore; `None` when it is not a terminal.
    tty: Option<(Box<dyn AsFd>, nix::sys::termios::Termios)>,
    stop: Arc<AtomicBool>,
}

impl Keys {
    /// No input to read and no signal to watch: a plain sleep.
    fn none() -> Keys {
        Keys {
            tty: None,
            stop: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Read keys from `input` if it is a terminal; stop early when `stop` is set.
    fn new(input: Box<dyn AsFd>, stop: Arc<AtomicBool>) -> Keys {
        use nix::sys::termios::{self, LocalFlags, SetArg, SpecialCharacterIndices as Cc};
        let is_tty = nix::unistd::isatty(input.as_fd().as_raw_fd()).unwrap_or(false);
        let saved = if is_tty {
            termios::tcgetattr(input.as_fd()).ok().and_then(|before| {
                let mut raw = before.clone();
                // Keys arrive one by one, unechoed; Ctrl-C still signals (ISIG stays on).
                raw.local_flags
                    .remove(LocalFlags::ICANON | LocalFlags::ECHO);
                raw.control_chars[Cc::VMIN as usize] = 0;
                raw.control_chars[Cc::VTIME as usize] = 0;
                termios::tcsetattr(input.as_fd(), SetArg::TCSANOW, &raw)
                    .ok()
                    .map(|()| before)
            })
        } else {
            None
        };
        Keys {
            tty: saved.map(|s| (input, s)),
            stop,
        }
    }

    /// Wait `d`; true when the user asked to quit.
    fn wait(&mut self, d: Duration) -> bool {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let end = Instant::now() + d;
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return true;
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            // Short slices, so a signal is noticed promptly even without a terminal to poll.
            let slice = left.min(Duration::from_millis(100));
            let Some((input, _)) = &self.tty else {
                std::thread::sleep(slice);
                continue;
            };
            let mut fds = [PollFd::new(input.as_fd(), PollFlags::POLLIN)];
            let ms =
                PollTimeout::try_from(slice.as_millis().max(1) as u64).unwrap_or(PollTimeout::MAX);
            match poll(&mut fds, ms) {
                Ok(n) if n > 0 => {
                    let mut buf = [0u8; 64];
                    match nix::unistd::read(input.as_fd().as_raw_fd(), &mut buf) {
                        Ok(n) if buf[..n].iter().any(|&b| b == b'q' || b == b'Q') => return true,
                        // Hung up: nothing more will come; keep time with sleeps.
                        Ok(0) | Err(_) => self.restore(),
                        Ok(_) => {}
                    }
                }
                Ok(_) => {}
                Err(_) => std::thread::sleep(slice),
            }
        }
    }

    fn restore(&mut self) {
        if let Some((input, before)) = self.tty.take() {
            let _ = nix::sys::termios::tcsetattr(
                input.as_fd(),
                nix::sys::termios::SetArg::TCSANOW,
                &before,
            );
        }
    }
}

impl Drop for Keys {
    fn drop(&mut self) {
        self.restore();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::termios::{tcgetattr, LocalFlags};

    fn args(json: bool, watch: bool) -> StatusArgs {
        StatusArgs {
            node: NodeArgs {
                config: None,
                node: "t".into(),
                pin_root: "/nonexistent".into(),
                run_dir: "/nonexistent".into(),
            },
            json,
            watch,
            interval: 0.1,
            all: false,
            check: false,
        }
    }

    /// Readings 100 ms apart on the sample node; the stop flag is set after `frames` readings.
    fn reader(stop: Arc<AtomicBool>, frames: u64) -> impl FnMut() -> Result<Snapshot> {
        let mut n = 0u64;
        move || {
            n += 1;
            if n > frames {
                stop.store(true, Ordering::Relaxed);
            }
            Ok(crate::snapshot::sample(
                "t",
                1_700_000_000_000 + n * 100,
                n * 10,
                n,
                n,
            ))
        }
    }

    /// `--watch`: the first frame already has rates (two readings before it), every frame does,
    /// and watched JSON too.
    #[test]
    fn the_first_watch_frame_has_rates() {
        for json in [false, true] {
            let stop = Arc::new(AtomicBool::new(false));
            let mut keys = Keys {
                tty: None,
                stop: Arc::clone(&stop),
            };
            let mut out = Vec::new();
            let code = show(
                &mut reader(Arc::clone(&stop), 3),
                &args(json, true),
                &mut keys,
                &mut out,
                || 100,
            )
            .unwrap();
            assert_eq!(code, ExitCode::SUCCESS);
            let out = String::from_utf8(out).unwrap();
            if json {
                let lines: Vec<&str> = out.lines().collect();
                assert_eq!(lines.len(), 3, "{out}");
                for l in lines {
                    let j: serde_json::Value = serde_json::from_str(l).unwrap();
                    assert_eq!(j["interval_seconds"], 0.1, "{l}");
                    assert_eq!(j["programs"][0]["rates"]["syn_answered"], 100.0);
                }
            } else {
                let frames: Vec<&str> = out.split("\x1b[2J\x1b[H").skip(1).collect();
                assert_eq!(frames.len(), 3, "{out}");
                for f in frames {
                    assert!(
                        f.contains("rates are per second over the last 0.1 s"),
                        "{f}"
                    );
                    assert!(!f.contains("rates need two readings"), "{f}");
                }
            }
        }
        // One JSON reading, at once: no rates (the documented one-shot form).
        let mut out = Vec::new();
        let stop = Arc::new(AtomicBool::new(false));
        show(
            &mut reader(stop, 9),
            &args(true, false),
            &mut Keys::none(),
            &mut out,
            || 100,
        )
        .unwrap();
        let j: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert!(j["interval_seconds"].is_null());
    }

    /// On a real terminal (a pty): keys are read unechoed one at a time while waiting, `q` ends
    /// the wait at once, other keys do not, and the terminal's settings come back afterwards.
    #[test]
    fn q_quits_the_wait_and_the_terminal_is_restored() {
        let pty = nix::pty::openpty(None, None).unwrap();
        let before = tcgetattr(&pty.slave).unwrap();
        assert!(before
            .local_flags
            .contains(LocalFlags::ICANON | LocalFlags::ECHO));
        let slave = pty.slave.try_clone().unwrap();
        let mut keys = Keys::new(Box::new(slave), Arc::new(AtomicBool::new(false)));
        let during = tcgetattr(&pty.slave).unwrap();
        assert!(!during.local_flags.contains(LocalFlags::ICANON));
        assert!(!during.local_flags.contains(LocalFlags::ECHO));
        assert!(
            during.local_flags.contains(LocalFlags::ISIG),
            "Ctrl-C still works"
        );

        // Another key: the wait runs its course.
        nix::unistd::write(&pty.master, b"x").unwrap();
        let t = Instant::now();
        assert!(!keys.wait(Duration::from_millis(300)));
        assert!(t.elapsed() >= Duration::from_millis(300));
        // `q` (no Enter needed): at once.
        let writer = {
            let master = pty.master.try_clone().unwrap();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(100));
                nix::unistd::write(&master, b"q").unwrap();
            })
        };
        let t = Instant::now();
        assert!(keys.wait(Duration::from_secs(30)));
        assert!(t.elapsed() < Duration::from_secs(5));
        writer.join().unwrap();
        drop(keys);
        let after = tcgetattr(&pty.slave).unwrap();
        assert_eq!(after.local_flags, before.local_flags);

        // A stop flag (SIGINT/SIGTERM) ends a wait too.
        let stop = Arc::new(AtomicBool::new(true));
        let mut keys = Keys::new(Box::new(pty.slave.try_clone().unwrap()), stop);
        assert!(keys.wait(Duration::from_secs(30)));
    }
}
