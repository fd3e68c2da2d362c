//! `synwall analyze`: what each cookie scheme would keep and lose of a capture's SYNs.

use crate::analyze::{Analysis, SchemeLoss};
use crate::pcap_io;
use anyhow::Result;
use clap::Args;
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct AnalyzeArgs {
    /// Input capture (pcap or pcapng, Ethernet).
    input: PathBuf,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

fn pct(n: u64, d: u64) -> String {
    if d == 0 {
        "-".into()
    } else {
        format!("{:.1}%", 100.0 * n as f64 / d as f64)
    }
}

pub fn run(a: AnalyzeArgs) -> Result<ExitCode> {
    let mut an = Analysis::new();
    let read = pcap_io::for_each_frame(&a.input, |_, frame| {
        an.add_frame(frame);
        Ok(())
    })?;
    for w in &read.warnings {
        eprintln!("synwall: warning: {w}");
    }
    if a.json {
        let row = |s: &SchemeLoss| {
            json!({
                "scheme": s.name, "syns": s.syns, "mss_exact": s.mss_exact, "mss_lower": s.mss_lower,
                "mss_loss_mean": if s.mss_lower > 0 { s.mss_loss_sum as f64 / s.mss_lower as f64 } else { 0.0 },
                "mss_loss_max": s.mss_loss_max, "mss_raised": s.mss_raised, "wscale_lost": s.wscale_lost,
                "wscale_changed": s.wscale_changed, "sack_lost": s.sack_lost, "ts_lost": s.ts_lost,
                "ecn_lost": s.ecn_lost, "rejected": s.rejected,
            })
        };
        println!(
            "{}",
            json!({"syns": an.syns, "malformed": an.malformed, "schemes": an.schemes.iter().map(row).collect::<Vec<_>>(), "warnings": read.warnings})
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{} SYNs analysed ({} malformed skipped)",
        an.syns, an.malformed
    );
    println!(
        "{:<12} {:>9} {:>22} {:>10} {:>9} {:>10} {:>9} {:>8} {:>8}",
        "scheme",
        "MSS exact",
        "MSS lower (mean/max B)",
        "MSS raised",
        "WS lost",
        "WS changed",
        "SACK lost",
        "TS lost",
        "ECN lost"
    );
    for s in &an.schemes {
        let lower = if s.mss_lower > 0 {
            format!(
                "{} ({:.0}/{})",
                pct(s.mss_lower, s.syns),
                s.mss_loss_sum as f64 / s.mss_lower as f64,
                s.mss_loss_max
            )
        } else {
            pct(0, s.syns)
        };
        println!(
            "{:<12} {:>9} {:>22} {:>10} {:>9} {:>10} {:>9} {:>8} {:>8}",
            s.name,
            pct(s.mss_exact, s.syns),
            lower,
            pct(s.mss_raised, s.syns),
            pct(s.wscale_lost, s.syns),
            pct(s.wscale_changed, s.syns),
            pct(s.sack_lost, s.syns),
            pct(s.ts_lost, s.syns),
            pct(s.ecn_lost, s.syns)
        );
        if s.rejected > 0 {
            println!(
                "  warning: {} cookies of {} did not validate",
                s.rejected, s.name
            );
        }
    }
    println!("(linux-no-ts: the same SYNs without their Timestamps option, as from a client with timestamps off)");
    Ok(ExitCode::SUCCESS)
}
