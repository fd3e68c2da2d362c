//! `synwall demo`: the main job on an embedded default. For now it shows the cookie core at work:
//! one SYN answered by each scheme and its ACK validated, the shipped vectors verified, and a
//! forgery measurement. (The data-path issue turns this into a netns lab with real traffic.)

use anyhow::Result;
use std::path::PathBuf;
use std::process::ExitCode;
use synwall_cookie::freebsd::{FreeBsd, Secret};
use synwall_cookie::linux::{Linux, Secrets};
use synwall_cookie::synwall_v1::{Config, MasterSecret, SynwallV1};
use synwall_cookie::{Ack, Addrs, Clock, CookieCodec, Flow, SipKey, Syn, SynOptions, Timestamps};

/// Where the shared vectors may be: beside the current directory's repo, or beside this build's.
fn find_vectors() -> Option<PathBuf> {
    let candidates = [
        PathBuf::from("../shared/vectors"),
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors"),
    ];
    candidates
        .into_iter()
        .find(|p| p.join("synwall_v1.json").is_file())
}

pub fn run() -> Result<ExitCode> {
    let (now_s, now_ms) = crate::args::now_unix();
    let now = Clock {
        unix_secs: now_s,
        ms: now_ms,
    };
    // A Windows-like SYN without timestamps: what classic cookies handle worst.
    let syn = Syn {
        flow: Flow {
            addrs: Addrs::V4 {
                client: [192, 0, 2, 10],
                service: [198, 51, 100, 80],
            },
            client_port: 40001,
            service_port: 443,
        },
        isn: 0x1234_5678,
        options: SynOptions {
            mss: Some(1460),
            wscale: Some(8),
            sack_permitted: true,
            timestamps: false,
            ece_cwr: false,
        },
    };
    println!(
        "SYN 192.0.2.10:40001 -> 198.51.100.80:443, MSS 1460, window scale 8, SACK, no timestamps"
    );
    let k = |b: u8| SipKey::from_bytes(&[b; 16]);
    let codecs: Vec<Box<dyn CookieCodec>> = vec![
        Box::new(SynwallV1::new(
            MasterSecret([0x5a; 32]),
            60,
            Config::default(),
            now.unix_secs,
        )),
        Box::new(Linux {
            secrets: Secrets([k(1), k(2)]),
        }),
        Box::new(FreeBsd {
            secret: Secret {
                keys: [k(3), k(4)],
                oddeven: 0,
            },
            secmod: 0,
        }),
    ];
    println!("scheme      cookie      what the server socket gets back from the ACK");
    for c in &codecs {
        let issued = c.generate(&syn, now);
        let ack = Ack {
            flow: syn.flow,
            seq: syn.isn.wrapping_add(1),
            ack: issued.isn.wrapping_add(1),
            timestamps: issued.tsval.map(|tsecr| Timestamps { tsval: 1, tsecr }),
        };
        let got = match c.validate(&ack, now) {
            Some(d) => format!(
                "MSS {}, window scale {}, SACK {}",
                d.mss,
                d.wscale.map_or("lost".into(), |w| w.to_string()),
                if d.sack_ok { "kept" } else { "lost" }
            ),
            None => "rejected".into(),
        };
        println!("{:<11} 0x{:08x}  {got}", c.name(), issued.isn);
    }
    println!();
    let mut ok = true;
    match find_vectors() {
        Some(dir) => {
            println!("test vectors in {}:", dir.display());
            let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .collect();
            files.sort();
            for f in files {
                let r = synwall_vectors::check_text(&std::fs::read_to_string(&f)?)?;
                println!(
                    "  {}: {}: {} passed, {} failed",
                    f.display(),
                    r.scheme,
                    r.passed,
                    r.failed
                );
                ok &= r.failed == 0;
            }
        }
        None => println!("test vectors: ../shared/vectors not found, skipped"),
    }
    println!();
    println!("forgery: 1e6 random ACKs against synwall-v1 (see `synwall cookie forge-test`)");
    crate::cookie_cmd::forge(
        1_000_000,
        crate::cookie_cmd::SchemeArg::SynwallV1,
        false,
        4,
        7,
        None,
        false,
    )?;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
