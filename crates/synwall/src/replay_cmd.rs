//! `synwall replay`: run the edge engine over a capture and write what it would send or forward.

use crate::args::{now_unix, DataPathArgs};
use crate::pcap_io;
use anyhow::Result;
use clap::Args;
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;
use synwall_cookie::synwall_v1::{epoch_of, EpochClock};
use synwall_engine::synack::MAX_SYNACK_LEN;
use synwall_engine::{Engine, EngineConfig, SaltRing, Salts, ServiceSet, Verdict};

#[derive(Args)]
pub struct ReplayArgs {
    /// Input capture (pcap or pcapng, Ethernet).
    input: PathBuf,
    /// Output capture (classic pcap): the SYN+ACKs sent and the frames forwarded, in input order.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    dp: DataPathArgs,
    /// Fix the clock (Unix seconds) so a replay is reproducible; TSval uses the same clock.
    #[arg(long, value_name = "UNIX_SECONDS")]
    now: Option<u64>,
    /// Strict mode: forward only flows whose handshake ACK validated.
    #[arg(long)]
    strict: bool,
    /// Print the counters as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(a: ReplayArgs) -> Result<ExitCode> {
    let secrets = a.dp.secrets()?;
    let mut cfg = EngineConfig::new(ServiceSet::new(a.dp.services.clone()));
    cfg.strict = a.strict;
    let (now_s, now_ms) = match a.now {
        Some(s) => (s, s.saturating_mul(1000)),
        None => now_unix(),
    };
    // The salts a node holds then (epochs e - 1 to e + 1), on a clock where TAI = UNIX time.
    let e = epoch_of(now_s, a.dp.epoch_seconds);
    let ring = SaltRing::derive(
        e.saturating_sub(1),
        e + 1,
        &secrets.current,
        secrets.accepted.as_ref(),
    );
    let salts = Salts::new(ring, EpochClock::new(a.dp.epoch_seconds, 0));
    let mut engine = Engine::new(cfg, salts);
    // The output is created only once the input's header parsed, and moved into place only when
    // the whole run worked: a failing replay leaves the old --out as it was.
    let input = pcap_io::Capture::open(&a.input)?;
    let mut out = pcap_io::Writer::create(&a.out, &input)?;
    let (mut frames, mut answered, mut forwarded, mut dropped) = (0u64, 0u64, 0u64, 0u64);
    let mut buf = Vec::new();
    let read = input.for_each_frame(|ts, frame| {
        frames += 1;
        buf.clear();
        buf.extend_from_slice(frame);
        buf.resize(frame.len().max(MAX_SYNACK_LEN), 0);
        match engine.xdp(&mut buf, frame.len(), now_ms).verdict {
            Verdict::Tx { len } => {
                answered += 1;
                out.write(ts, &buf[..len])
            }
            Verdict::Pass => {
                forwarded += 1;
                out.write(ts, frame)
            }
            Verdict::Drop => {
                dropped += 1;
                Ok(())
            }
        }
    })?;
    out.finish()?;
    for w in &read.warnings {
        eprintln!("synwall: warning: {w}");
    }
    let c = engine.counters();
    if a.json {
        let counters: serde_json::Map<String, serde_json::Value> = c
            .iter()
            .map(|(k, v)| (k.name().to_string(), v.into()))
            .collect();
        println!(
            "{}",
            json!({"frames": frames, "answered": answered, "forwarded": forwarded, "dropped": dropped, "counters": counters, "warnings": read.warnings})
        );
    } else {
        println!("{frames} frames: {answered} answered, {forwarded} forwarded, {dropped} dropped");
        for (k, v) in c.iter().filter(|(_, v)| *v > 0) {
            println!("  {:<28} {v}", k.name());
        }
    }
    Ok(ExitCode::SUCCESS)
}
