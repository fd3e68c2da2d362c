//! `synwall status [--json] [--watch]`: read a node's pinned maps (no daemon needed: it works as
//! long as the programs are attached) and show counters and rates.

use crate::daemon::{NodeArgs, RunFiles};
use crate::{snapshot, status_view};
use anyhow::Result;
use clap::Args;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;
use synwall_bpf::pin::NodePins;

#[derive(Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub node: NodeArgs,
    /// Print JSON (one object; with --watch, one per line).
    #[arg(long)]
    pub json: bool,
    /// Refresh every --interval seconds until interrupted (like `top`).
    #[arg(long)]
    pub watch: bool,
    /// Seconds between refreshes, 0.1 to 3600 (rates are computed over this interval).
    #[arg(long, default_value_t = 1.0, value_parser = interval)]
    pub interval: f64,
    /// Show counters that are zero too.
    #[arg(long)]
    pub all: bool,
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
    let period = node
        .epoch_seconds
        .or_else(|| {
            RunFiles::new(&a.node.run_dir, &name)
                .read_state()
                .and_then(|s| s.get("epoch_seconds")?.as_u64())
        })
        .unwrap_or(0);
    let interval = Duration::from_secs_f64(a.interval);
    let mut prev = None;
    if !a.watch {
        // One reading; with rates, if asked for text, over a short first interval.
        let first = snapshot::from_pins(&pins, &name, period)?;
        if !a.json {
            std::thread::sleep(interval.min(Duration::from_secs(1)));
            prev = Some(first);
        } else {
            println!("{}", status_view::render_json(&first, None));
            return Ok(ExitCode::SUCCESS);
        }
    }
    loop {
        let cur = snapshot::from_pins(&pins, &name, period)?;
        let out = if a.json {
            status_view::render_json(&cur, prev.as_ref()).to_string() + "\n"
        } else if a.watch {
            status_view::watch_frame(&status_view::render_text(
                &cur,
                prev.as_ref(),
                a.all,
                page_width(),
            ))
        } else {
            status_view::render_text(&cur, prev.as_ref(), a.all, page_width())
        };
        let mut so = std::io::stdout().lock();
        if so
            .write_all(out.as_bytes())
            .and_then(|_| so.flush())
            .is_err()
        {
            return Ok(ExitCode::SUCCESS); // e.g. piped into `head`
        }
        if !a.watch {
            return Ok(ExitCode::SUCCESS);
        }
        prev = Some(cur);
        std::thread::sleep(interval);
    }
}

/// The terminal's width when stdout is one, else [`status_view::WIDTH`].
fn page_width() -> usize {
    terminal_size::terminal_size_of(std::io::stdout())
        .map(|(w, _)| usize::from(w.0))
        .filter(|&w| w > 0)
        .unwrap_or(status_view::WIDTH)
}
