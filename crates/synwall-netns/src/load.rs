//! Continuous client load: real connections, one after another from a client namespace, each
//! sending a few KB and checking the server's transformed answer, until stopped. What the
//! "0 failed connections" tests count.

use crate::tcp;
use crate::Netns;
use anyhow::{ensure, Result};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What a load run saw.
#[derive(Clone, Debug, Default)]
pub struct LoadReport {
    /// Connections that completed their exchange.
    pub ok: u64,
    /// Failed connections: (seconds since start, error).
    pub failed: Vec<(f64, String)>,
    /// Slowest successful connection (connect + exchange).
    pub slowest: Duration,
    /// Successful connections slower than half a second: (seconds since start, duration).
    pub slow: Vec<(f64, Duration)>,
    /// Wall time of the run.
    pub elapsed: Duration,
}

/// A running load; [`Load::finish`] stops it and reports.
pub struct Load {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<LoadReport>>>,
}

impl Load {
    /// Connect to each of `targets` in turn from `ns`, every `gap`, `len` bytes each way.
    pub fn start(ns: &Netns, targets: Vec<SocketAddr>, len: usize, gap: Duration) -> Result<Load> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = ns.spawn_thread(move || {
            let t0 = Instant::now();
            let mut r = LoadReport::default();
            let mut i = 0u32;
            while !flag.load(Ordering::Relaxed) {
                let to = targets[i as usize % targets.len()];
                let begun = Instant::now();
                match one(to, len, i) {
                    Ok(()) => {
                        r.ok += 1;
                        let took = begun.elapsed();
                        r.slowest = r.slowest.max(took);
                        if took > Duration::from_millis(500) {
                            r.slow.push(((begun - t0).as_secs_f64(), took));
                        }
                    }
                    Err(e) => r
                        .failed
                        .push((t0.elapsed().as_secs_f64(), format!("{to}: {e:#}"))),
                }
                i = i.wrapping_add(1);
                std::thread::sleep(gap);
            }
            r.elapsed = t0.elapsed();
            r
        })?;
        Ok(Load {
            stop,
            thread: Some(thread),
        })
    }

    /// Stop after the connection in flight and report.
    pub fn finish(mut self) -> Result<LoadReport> {
        self.stop.store(true, Ordering::Relaxed);
        let t = self.thread.take().expect("running");
        t.join()
            .map_err(|_| anyhow::anyhow!("load thread panicked"))?
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn one(to: SocketAddr, len: usize, seed: u32) -> Result<()> {
    let data = tcp::pattern(len, seed);
    let mut s = tcp::connect(to, None, Duration::from_secs(5))?;
    let (answer, _) = tcp::exchange(&mut s, &data, Duration::from_secs(5))?;
    ensure!(
        answer == tcp::transform(&data),
        "answer of {} bytes is not the transform of the {} sent",
        answer.len(),
        data.len()
    );
    Ok(())
}
