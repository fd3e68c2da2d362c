//! `synwall cookie ...`: verify vector files, encode and check single cookies, and measure forgery
//! resistance.

use crate::args::{now_unix, parse_secret, read_secret_file};
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use rand::{rngs::SmallRng, Rng, SeedableRng};
use serde_json::json;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use synwall_cookie::freebsd::{FreeBsd, Secret};
use synwall_cookie::linux::{Linux, Secrets};
use synwall_cookie::synwall_v1::{self as v1, MasterSecret, SynwallV1};
use synwall_cookie::{
    Ack, Addrs, Clock, CookieCodec, Decoded, Diagnosis, Flow, KeysTried, Rejection, SipKey, Syn,
    SynOptions, Timestamps,
};

#[derive(Subcommand)]
pub enum CookieCommand {
    /// Check every case of vector files (scheme recognised from content). Exit status: 0 all
    /// passed, 1 a case failed, 2 a file could not be read or is not a vector file.
    VerifyVectors {
        /// Vector files (synwall_v1.json, linux_isn.json, linux_ts.json, freebsd.json or any file of
        /// the same schema).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// How many mismatches to print per file.
        #[arg(long, default_value_t = 5)]
        max_diffs: usize,
    },
    /// Compute the cookie (and TSval) a SYN+ACK would carry for a SYN.
    Encode(EncodeArgs),
    /// Validate a handshake ACK and print the options it restores; exit 1 if invalid.
    Check(CheckArgs),
    /// Fire random forged ACKs at the validator and compare the acceptance rate with the bound.
    ForgeTest(ForgeArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SchemeArg {
    /// synwall-v1 (SPEC.md sections 2-6).
    #[value(name = "synwall-v1")]
    SynwallV1,
    /// Linux ISN cookie + timestamp cookie.
    Linux,
    /// FreeBSD SipHash syncookie.
    Freebsd,
}

/// Keys and clocks shared by encode and check.
#[derive(Args, Clone)]
#[command(group(clap::ArgGroup::new("key").args(["secret", "secret_file"]).required(true)))]
pub struct KeyArgs {
    /// Cookie scheme.
    #[arg(long, value_enum, default_value = "synwall-v1")]
    scheme: SchemeArg,
    /// Secret as 64 hex characters (synwall-v1: the master secret; linux: secret[0]||secret[1];
    /// freebsd: key[0]||key[1]).
    #[arg(long)]
    secret: Option<String>,
    /// File holding the secret (32 raw bytes or 64 hex characters).
    #[arg(long)]
    secret_file: Option<PathBuf>,
    /// Wall-clock time in Unix seconds (default: now).
    #[arg(long, value_parser = number::<u64>)]
    time: Option<u64>,
    /// Node millisecond clock for TSval (default: now in ms).
    #[arg(long, value_parser = number::<u64>)]
    clock_ms: Option<u64>,
    /// synwall-v1 epoch length in seconds.
    #[arg(long, default_value_t = v1::DEFAULT_EPOCH_SECONDS, value_parser = clap::value_parser!(u64).range(1..))]
    epoch_seconds: u64,
    /// freebsd: which secret generates (0 or 1).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=1))]
    oddeven: u8,
    /// freebsd: the syncache bucket pointer mixed into the MAC.
    #[arg(long, default_value_t = 0, value_parser = number::<u64>)]
    secmod: u64,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// The flow: client = the SYN's source.
#[derive(Args, Clone)]
pub struct FlowArgs {
    /// Client address and port, e.g. 192.0.2.7:40000 or [2001:db8::7]:40000.
    #[arg(long)]
    client: String,
    /// Service address and port, e.g. 198.51.100.1:443.
    #[arg(long)]
    service: String,
}

#[derive(Args)]
pub struct EncodeArgs {
    #[command(flatten)]
    flow: FlowArgs,
    /// The SYN's sequence number (decimal, or hex with 0x).
    #[arg(long, value_parser = number::<u32>)]
    isn: u32,
    /// The SYN's MSS option (omit: no MSS option).
    #[arg(long)]
    mss: Option<u16>,
    /// The SYN's window-scale shift (omit: no window-scale option); a shift above 14 is encoded
    /// as 14 (RFC 7323).
    #[arg(long)]
    wscale: Option<u8>,
    /// The SYN carried SACK-Permitted.
    #[arg(long)]
    sack: bool,
    /// The SYN carried Timestamps.
    #[arg(long)]
    ts: bool,
    /// The SYN had ECE and CWR set.
    #[arg(long)]
    ece_cwr: bool,
    #[command(flatten)]
    keys: KeyArgs,
}

#[derive(Args)]
pub struct CheckArgs {
    #[command(flatten)]
    flow: FlowArgs,
    /// The ACK's acknowledgment number (cookie + 1; decimal, or hex with 0x).
    #[arg(long, value_parser = number::<u32>)]
    ack: u32,
    /// The ACK's sequence number (client ISN + 1; decimal, or hex with 0x).
    #[arg(long, value_parser = number::<u32>)]
    seq: u32,
    /// The ACK's TSecr (omit: the ACK has no Timestamps option; decimal, or hex with 0x).
    #[arg(long, value_parser = number::<u32>)]
    tsecr: Option<u32>,
    #[command(flatten)]
    keys: KeyArgs,
}

#[derive(Args)]
pub struct ForgeArgs {
    /// Number of forged ACKs.
    #[arg(long, default_value_t = 10_000_000)]
    tries: u64,
    /// Cookie scheme.
    #[arg(long, value_enum, default_value = "synwall-v1")]
    scheme: SchemeArg,
    /// Forged ACKs carry a Timestamps option (synwall-v1 then checks 31 MAC bits).
    #[arg(long)]
    timestamps: bool,
    /// Address family of the forged flows.
    #[arg(long, default_value_t = 4, value_parser = parse_family)]
    family: u8,
    /// PRNG seed (the secret is drawn from it too).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(cmd: CookieCommand) -> Result<ExitCode> {
    match cmd {
        CookieCommand::VerifyVectors { files, max_diffs } => verify_vectors(&files, max_diffs),
        CookieCommand::Encode(a) => encode(a),
        CookieCommand::Check(a) => check(a),
        CookieCommand::ForgeTest(a) => forge_test(a),
    }
}

/// `verify-vectors`: a case that fails.
pub const VECTORS_FAILED: u8 = 1;
/// `verify-vectors`: a file that could not be checked (unreadable, not a vector file); it wins
/// over a failed case, since the run is incomplete.
pub const VECTORS_UNCHECKED: u8 = 2;

fn verify_vectors(files: &[PathBuf], max_diffs: usize) -> Result<ExitCode> {
    let (mut failed, mut unchecked) = (false, false);
    for path in files {
        let name = path.display();
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                println!("{name}: cannot read: {e}");
                unchecked = true;
                continue;
            }
        };
        match synwall_vectors::check_text(&text) {
            Ok(r) => {
                println!(
                    "{name}: {}: {} passed, {} failed",
                    r.scheme, r.passed, r.failed
                );
                for f in r.failures.iter().take(max_diffs) {
                    println!("  {f}");
                }
                if r.failures.len() > max_diffs {
                    println!("  ... and {} more mismatches", r.failures.len() - max_diffs);
                }
                failed |= r.failed > 0;
            }
            Err(e) => {
                println!("{name}: {e}");
                unchecked = true;
            }
        }
    }
    Ok(ExitCode::from(if unchecked {
        VECTORS_UNCHECKED
    } else if failed {
        VECTORS_FAILED
    } else {
        0
    }))
}

fn parse_flow(f: &FlowArgs) -> Result<Flow> {
    let parse = |what: &str, s: &str| -> Result<SocketAddr> {
        s.parse()
            .with_context(|| format!("--{what} {s:?} is not ADDRESS:PORT (IPv6 as [ADDRESS]:PORT)"))
    };
    let c = parse("client", &f.client)?;
    let s = parse("service", &f.service)?;
    let addrs = match (c, s) {
        (SocketAddr::V4(c), SocketAddr::V4(s)) => Addrs::V4 {
            client: c.ip().octets(),
            service: s.ip().octets(),
        },
        (SocketAddr::V6(c), SocketAddr::V6(s)) => Addrs::V6 {
            client: c.ip().octets(),
            service: s.ip().octets(),
        },
        _ => bail!("--client and --service must be of the same address family"),
    };
    Ok(Flow {
        addrs,
        client_port: c.port(),
        service_port: s.port(),
    })
}

/// A codec for the chosen scheme with its secret, and the clock to use.
fn codec_from(k: &KeyArgs) -> Result<(Box<dyn CookieCodec>, Clock)> {
    let secret = match (&k.secret, &k.secret_file) {
        (Some(s), _) => parse_secret(s.as_bytes()).context("--secret")?,
        (None, Some(p)) => read_secret_file(p)?,
        (None, None) => bail!("one of --secret or --secret-file is required"),
    };
    let (now_s, now_ms) = now_unix();
    let clock = Clock {
        unix_secs: k.time.unwrap_or(now_s),
        ms: k.clock_ms.unwrap_or(now_ms),
    };
    Ok((
        make_codec(
            k.scheme,
            secret,
            k.epoch_seconds,
            k.oddeven,
            k.secmod,
            clock.unix_secs,
        ),
        clock,
    ))
}

fn make_codec(
    scheme: SchemeArg,
    secret: [u8; 32],
    period: u64,
    oddeven: u8,
    secmod: u64,
    t: u64,
) -> Box<dyn CookieCodec> {
    let halves = || {
        let mut a = [0u8; 16];
        let mut b = [0u8; 16];
        a.copy_from_slice(&secret[..16]);
        b.copy_from_slice(&secret[16..]);
        [SipKey::from_bytes(&a), SipKey::from_bytes(&b)]
    };
    match scheme {
        SchemeArg::SynwallV1 => Box::new(SynwallV1::new(
            MasterSecret(secret),
            period,
            v1::Config::default(),
            t,
        )),
        SchemeArg::Linux => Box::new(Linux {
            secrets: Secrets(halves()),
        }),
        SchemeArg::Freebsd => Box::new(FreeBsd {
            secret: Secret {
                keys: halves(),
                oddeven,
            },
            secmod,
        }),
    }
}

fn decoded_json(d: &Decoded) -> serde_json::Value {
    json!({
        "mss": d.mss,
        "wscale_ok": d.wscale.is_some(),
        "snd_wscale": d.wscale.unwrap_or(0),
        "sack_ok": d.sack_ok,
        "tstamp_ok": d.tstamp_ok,
        "ecn_ok": d.ecn_ok,
    })
}

fn decoded_text(d: &Decoded) -> String {
    format!(
        "mss {}, wscale {}, sack {}, timestamps {}, ecn {}",
        d.mss,
        d.wscale.map_or("none".to_string(), |w| w.to_string()),
        yes(d.sack_ok),
        yes(d.tstamp_ok),
        yes(d.ecn_ok)
    )
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn encode(a: EncodeArgs) -> Result<ExitCode> {
    let flow = parse_flow(&a.flow)?;
    let (codec, clock) = codec_from(&a.keys)?;
    let syn = Syn {
        flow,
        isn: a.isn,
        options: SynOptions {
            mss: a.mss,
            wscale: a.wscale,
            sack_permitted: a.sack,
            timestamps: a.ts,
            ece_cwr: a.ece_cwr,
        },
    };
    let issued = codec.generate(&syn, clock);
    // What the ACK completing this handshake would restore: the cookie round-trips through the
    // validator, so the printout shows what the server socket will get.
    let ack = Ack {
        flow,
        seq: a.isn.wrapping_add(1),
        ack: issued.isn.wrapping_add(1),
        timestamps: issued.tsval.map(|tsecr| Timestamps { tsval: 0, tsecr }),
    };
    let restored = codec.validate(&ack, clock);
    let mut notes = Vec::new();
    if let Some(w) = a.wscale.filter(|&w| w > v1::WSCALE_MAX) {
        notes.push(format!(
            "--wscale {w} is above {}: encoded as {0} (RFC 7323; SPEC section 3)",
            v1::WSCALE_MAX
        ));
    }
    let check = check_args(&a, &ack, clock);
    if a.keys.json {
        println!(
            "{}",
            json!({
                "scheme": codec.name(),
                "unix_time": clock.unix_secs,
                "cookie": issued.isn,
                "cookie_hex": format!("{:08x}", issued.isn),
                "tsval": issued.tsval,
                "ecn": issued.ecn,
                "ack": ack.ack,
                "seq": ack.seq,
                "restores": restored.as_ref().map(decoded_json),
                "check_args": check,
                "notes": notes,
            })
        );
    } else {
        println!("scheme    {}", codec.name());
        println!("cookie    {} (0x{:08x})", issued.isn, issued.isn);
        match issued.tsval {
            Some(t) => println!("tsval     {t} (0x{t:08x})"),
            None => println!("tsval     none (no timestamps)"),
        }
        println!("ecn       {}", yes(issued.ecn));
        println!(
            "ack       seq={} ack={} completes the handshake",
            ack.seq, ack.ack
        );
        match restored {
            Some(d) => println!("restores  {}", decoded_text(&d)),
            None => println!("restores  nothing: the cookie does not round-trip"),
        }
        println!("check     synwall cookie check {}", shell_words(&check));
        for n in &notes {
            println!("note      {n}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The `synwall cookie check` arguments that validate the ACK completing this handshake, at the
/// same time, with the same scheme and secret as given to `encode`.
fn check_args(a: &EncodeArgs, ack: &Ack, clock: Clock) -> Vec<String> {
    let k = &a.keys;
    let mut v: Vec<String> = vec![
        "--client".into(),
        a.flow.client.clone(),
        "--service".into(),
        a.flow.service.clone(),
        "--seq".into(),
        ack.seq.to_string(),
        "--ack".into(),
        ack.ack.to_string(),
    ];
    if let Some(ts) = ack.timestamps {
        v.extend(["--tsecr".into(), ts.tsecr.to_string()]);
    }
    if k.scheme != SchemeArg::SynwallV1 {
        let name = k.scheme.to_possible_value().expect("no skipped values");
        v.extend(["--scheme".into(), name.get_name().to_string()]);
    }
    v.extend(["--time".into(), clock.unix_secs.to_string()]);
    match k.scheme {
        SchemeArg::SynwallV1 => v.extend(["--epoch-seconds".into(), k.epoch_seconds.to_string()]),
        SchemeArg::Freebsd => v.extend(["--secmod".into(), k.secmod.to_string()]),
        SchemeArg::Linux => {}
    }
    // The key as it was given: the secret itself was on this command line already.
    match (&k.secret, &k.secret_file) {
        (Some(s), _) => v.extend(["--secret".into(), s.clone()]),
        (None, Some(p)) => v.extend(["--secret-file".into(), p.display().to_string()]),
        (None, None) => {}
    }
    v
}

/// Arguments as a shell would need them typed: quoted when they hold anything but plain
/// characters (an IPv6 `[addr]:port` is a glob pattern to the shell).
fn shell_words(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            let plain = !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.:/=+,@%".contains(c));
            if plain {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn check(a: CheckArgs) -> Result<ExitCode> {
    let flow = parse_flow(&a.flow)?;
    let (codec, clock) = codec_from(&a.keys)?;
    let ack = Ack {
        flow,
        seq: a.seq,
        ack: a.ack,
        timestamps: a.tsecr.map(|tsecr| Timestamps { tsval: 0, tsecr }),
    };
    let diag = codec.diagnose(&ack, clock);
    let tried = tried_text(&diag.tried);
    if a.keys.json {
        let (code, why) = match &diag.result {
            Ok(_) => (None, None),
            Err(r) => (
                Some(rejection_code(r)),
                Some(rejection_text(r, &diag, a.keys.epoch_seconds)),
            ),
        };
        println!(
            "{}",
            json!({
                "scheme": codec.name(),
                "unix_time": clock.unix_secs,
                "valid": diag.result.is_ok(),
                "decoded": diag.result.as_ref().ok().map(decoded_json),
                "tried": tried_json(&diag.tried),
                "reason": code,
                "explanation": why,
            })
        );
    } else {
        match &diag.result {
            Ok(d) => println!("valid: {} ({tried})", decoded_text(d)),
            Err(r) => println!(
                "invalid: {} ({tried})",
                rejection_text(r, &diag, a.keys.epoch_seconds)
            ),
        }
    }
    Ok(if diag.result.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// What the validator tried, in words.
fn tried_text(t: &KeysTried) -> String {
    match *t {
        KeysTried::Epochs([cur, prev]) => format!("tried the salts of epochs {cur} and {prev}"),
        KeysTried::Counters { now, accepted } => format!(
            "tried minute counters {now} back to {}",
            now.wrapping_sub(accepted - 1)
        ),
        KeysTried::Secret(i) => format!("tried secret {i}, the one the cookie names"),
    }
}

/// What the validator tried, for `--json`.
fn tried_json(t: &KeysTried) -> serde_json::Value {
    match *t {
        KeysTried::Epochs(e) => json!({ "epochs": e }),
        KeysTried::Counters { now, accepted } => json!({
            "minute_counters": (0..accepted).map(|i| now.wrapping_sub(i)).collect::<Vec<_>>()
        }),
        KeysTried::Secret(i) => json!({ "secret": i }),
    }
}

/// A stable name for each reason (the `reason` field of `--json`).
fn rejection_code(r: &Rejection) -> &'static str {
    match r {
        Rejection::MacMismatch { .. } => "mac_mismatch",
        Rejection::OtherEpoch { .. } => "other_epoch",
        Rejection::TimestampsMissing { .. } => "tsecr_missing",
        Rejection::TimestampsUnexpected { .. } => "tsecr_unexpected",
        Rejection::TsecrMismatch { .. } => "tsecr_mismatch",
        Rejection::Expired { .. } => "expired",
    }
}

/// Why the ACK is invalid, and what to do about it.
fn rejection_text(r: &Rejection, d: &Diagnosis, period: u64) -> String {
    let current = match d.tried {
        KeysTried::Epochs([cur, _]) => cur,
        _ => 0,
    };
    match *r {
        Rejection::MacMismatch {
            searched: Some((first, last)),
        } => format!(
            "MAC mismatch: no salt from epoch {first} to {last} makes the cookie match; it was \
             not issued for this client, service and --seq (client ISN + 1) with this secret"
        ),
        Rejection::MacMismatch { searched: None } => "MAC mismatch: the cookie was not issued \
             for this client, service and --seq (client ISN + 1) with this secret"
            .to_string(),
        Rejection::OtherEpoch { epoch } if epoch < current => format!(
            "expired: the cookie was issued in epoch {epoch} (unix time {} to {}), {} epochs \
             before the current one; a cookie is accepted in the epoch it was issued in and the \
             next",
            epoch.saturating_mul(period),
            epoch
                .saturating_add(1)
                .saturating_mul(period)
                .saturating_sub(1),
            current - epoch
        ),
        Rejection::OtherEpoch { epoch } => format!(
            "the cookie was issued in epoch {epoch}, {} after the current one: the issuer's \
             clock is ahead of this one (compare --time)",
            epoch - current
        ),
        Rejection::TimestampsMissing { .. } => "the cookie was issued to a SYN with \
             timestamps, so the ACK's TSecr is part of it: add --tsecr (the TSval the SYN+ACK \
             carried)"
            .to_string(),
        Rejection::TimestampsUnexpected { .. } => "the cookie was issued to a SYN without \
             timestamps: drop --tsecr"
            .to_string(),
        Rejection::TsecrMismatch { .. } => "the cookie matches but --tsecr does not: it must \
             be the TSval the SYN+ACK carried (its low 8 bits hold the ECN bit and 7 MAC bits)"
            .to_string(),
        Rejection::Expired { issued, now } => format!(
            "expired: issued at minute counter {issued}, {} minutes before now (counter {now}); \
             Linux accepts a cookie for {} minutes",
            now.wrapping_sub(issued),
            synwall_cookie::linux::MAX_SYNCOOKIE_AGE
        ),
    }
}

fn random_flow(rng: &mut SmallRng, family: u8) -> Flow {
    let addrs = if family == 6 {
        Addrs::V6 {
            client: rng.gen(),
            service: rng.gen(),
        }
    } else {
        Addrs::V4 {
            client: rng.gen(),
            service: rng.gen(),
        }
    };
    Flow {
        addrs,
        client_port: rng.gen(),
        service_port: rng.gen(),
    }
}

fn forge_test(a: ForgeArgs) -> Result<ExitCode> {
    forge(
        a.tries,
        a.scheme,
        a.timestamps,
        a.family,
        a.seed,
        a.threads,
        a.json,
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Fire `tries` random forged ACKs at the validator of `scheme` and print the acceptance rate
/// next to the bound.
#[allow(clippy::too_many_arguments)]
pub fn forge(
    tries: u64,
    scheme: SchemeArg,
    timestamps: bool,
    family: u8,
    seed: u64,
    threads: Option<usize>,
    as_json: bool,
) -> Result<()> {
    let a = ForgeArgs {
        tries,
        scheme,
        timestamps,
        family,
        seed,
        threads,
        json: as_json,
    };
    if a.tries == 0 {
        bail!("--tries must be at least 1");
    }
    let threads = a
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let mut seeder = SmallRng::seed_from_u64(a.seed);
    let secret: [u8; 32] = seeder.gen();
    let clock = Clock {
        unix_secs: 1_800_000_000,
        ms: 0,
    };
    let codec = make_codec(
        a.scheme,
        secret,
        v1::DEFAULT_EPOCH_SECONDS,
        0,
        0,
        clock.unix_secs,
    );
    let started = std::time::Instant::now();
    let accepted: u64 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads as u64)
            .map(|i| {
                let n = a.tries / threads as u64 + u64::from(i < a.tries % threads as u64);
                let seed = a
                    .seed
                    .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                    .wrapping_add(i + 1);
                let codec = &codec;
                let (family, ts) = (a.family, a.timestamps);
                s.spawn(move || {
                    let mut rng = SmallRng::seed_from_u64(seed);
                    let mut hits = 0u64;
                    for _ in 0..n {
                        let ack = Ack {
                            flow: random_flow(&mut rng, family),
                            seq: rng.gen(),
                            ack: rng.gen(),
                            timestamps: ts.then(|| Timestamps {
                                tsval: rng.gen(),
                                tsecr: rng.gen(),
                            }),
                        };
                        hits += codec.validate(&ack, clock).is_some() as u64;
                    }
                    hits
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("worker panicked"))
            .sum()
    });
    let secs = started.elapsed().as_secs_f64();
    let bits = codec.mac_bits(a.timestamps);
    let keys = codec.keys_tried();
    let per_key = 2f64.powi(-(bits as i32));
    let bound = keys as f64 * per_key;
    let rate = accepted as f64 / a.tries as f64;
    let expected = bound * a.tries as f64;
    if a.json {
        println!(
            "{}",
            json!({
                "scheme": codec.name(), "family": a.family, "timestamps": a.timestamps,
                "tries": a.tries, "accepted": accepted, "rate": rate,
                "bound_per_key_bits": bits, "keys_tried": keys, "bound": bound,
                "expected_accepted": expected, "seconds": secs,
            })
        );
    } else {
        println!(
            "{} IPv{} {}: {} forged ACKs, {} accepted, rate {:.3e}; bound {} key(s) x 2^-{} = {:.3e} (expected {:.1} accepted); {:.1} s",
            codec.name(),
            a.family,
            if a.timestamps { "with timestamps" } else { "without timestamps" },
            a.tries,
            accepted,
            rate,
            keys,
            bits,
            bound,
            expected,
            secs
        );
    }
    Ok(())
}

fn parse_family(s: &str) -> Result<u8, String> {
    match s {
        "4" => Ok(4),
        "6" => Ok(6),
        _ => Err(format!("{s:?} is not an address family (4 or 6)")),
    }
}

/// A number as `encode` prints it: decimal, or hexadecimal with `0x`.
fn number<T: TryFrom<u64> + Into<u64> + Bounded>(s: &str) -> Result<T, String> {
    let t = s.trim();
    let v = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => t.parse::<u64>().ok(),
    };
    v.and_then(|v| T::try_from(v).ok()).ok_or_else(|| {
        format!(
            "{s:?} is not a whole number from 0 to {} (decimal, or hex with 0x)",
            T::MAX.into()
        )
    })
}

/// The largest value of a number type, for [`number`]'s message.
trait Bounded: Sized {
    const MAX: Self;
}
impl Bounded for u32 {
    const MAX: Self = u32::MAX;
}
impl Bounded for u64 {
    const MAX: Self = u64::MAX;
}
