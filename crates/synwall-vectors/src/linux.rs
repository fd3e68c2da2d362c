//! `linux_isn.json` (ISN cookie generation and checks) and `linux_ts.json` (timestamp cookie
//! encode and decode).

use crate::util::{check_family, flow, sip_key};
use crate::{Fields, Show, Tally};
use serde::Deserialize;
use synwall_cookie::linux::{self, Secrets, TsSysctls};

#[derive(Deserialize)]
pub(crate) struct IsnFile {
    cases: Vec<IsnCase>,
}

#[derive(Deserialize)]
struct IsnCase {
    id: Option<u64>,
    family: u8,
    secret0_hex: String,
    secret1_hex: String,
    saddr: String,
    daddr: String,
    sport: u16,
    dport: u16,
    client_isn: u32,
    mss_in: u16,
    count: u32,
    cookie: Option<u32>,
    mss_encoded: Option<u16>,
    mss_index: Option<usize>,
    h0: Option<u32>,
    h1: Option<u32>,
    #[serde(default)]
    checks: Vec<IsnCheck>,
}

#[derive(Deserialize)]
struct IsnCheck {
    kind: Option<String>,
    count_now: u32,
    cookie: u32,
    client_isn: u32,
    mss: u16,
}

pub(crate) fn check_isn(file: &IsnFile, t: &mut Tally) -> Result<(), String> {
    for (idx, c) in file.cases.iter().enumerate() {
        let id = c.id.unwrap_or(idx as u64);
        let ctx = |e: String| format!("case {id}: {e}");
        let secrets = Secrets([
            sip_key("secret0_hex", &c.secret0_hex).map_err(ctx)?,
            sip_key("secret1_hex", &c.secret1_hex).map_err(ctx)?,
        ]);
        let fl = flow(&c.saddr, &c.daddr, c.sport, c.dport).map_err(ctx)?;
        check_family(c.family, &fl).map_err(ctx)?;

        let loc = || format!("case {id} (init_sequence, count={})", c.count);
        let (cookie, mss_encoded) =
            linux::init_sequence(&secrets, &fl, c.client_isn, c.mss_in, c.count);
        t.opt_field(&loc, "cookie", c.cookie, cookie);
        t.opt_field(&loc, "mss_encoded", c.mss_encoded, mss_encoded);
        t.opt_field(
            &loc,
            "mss_index",
            c.mss_index,
            linux::mss_table(&fl.addrs).index_at_or_below(Some(c.mss_in)),
        );
        t.opt_field(&loc, "h0", c.h0, linux::cookie_hash(&secrets, &fl, 0, 0));
        t.opt_field(
            &loc,
            "h1",
            c.h1,
            linux::cookie_hash(&secrets, &fl, c.count, 1),
        );
        t.end_item();

        for (ci, k) in c.checks.iter().enumerate() {
            let loc = || {
                format!(
                    "case {id} check {ci} ({}, count_now={})",
                    k.kind.as_deref().unwrap_or("?"),
                    k.count_now
                )
            };
            let mss = linux::check(&secrets, &fl, k.cookie, k.client_isn, k.count_now);
            t.field(&loc, "mss", k.mss, mss);
            t.end_item();
        }
    }
    Ok(())
}

#[derive(Deserialize)]
pub(crate) struct TsFile {
    #[serde(default)]
    encode: Vec<TsEncode>,
    #[serde(default)]
    decode: Vec<TsDecode>,
}

#[derive(Deserialize)]
struct TsEncode {
    id: Option<u64>,
    ts_now: u64,
    wscale_ok: bool,
    snd_wscale: u8,
    sack_ok: bool,
    ecn_ok: bool,
    ts_ns: Option<u64>,
    tsval: Option<u32>,
    options: Option<u32>,
    decode_of_tsval: Option<DecodeOut>,
}

#[derive(Deserialize)]
struct TsDecode {
    id: Option<u64>,
    tsecr: u32,
    saw_tstamp: bool,
    sysctl_tcp_timestamps: u32,
    sysctl_tcp_sack: u32,
    sysctl_tcp_window_scaling: u32,
    #[serde(flatten)]
    out: DecodeOut,
}

#[derive(Deserialize, Debug, PartialEq, Eq, Clone, Copy)]
struct DecodeOut {
    ok: bool,
    wscale_ok: bool,
    snd_wscale: u8,
    #[serde(deserialize_with = "int_bool")]
    sack_ok: bool,
    ecn_ok: bool,
}

impl Fields for DecodeOut {
    fn fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("ok", self.ok.show()),
            ("wscale_ok", self.wscale_ok.show()),
            ("snd_wscale", self.snd_wscale.show()),
            ("sack_ok", self.sack_ok.show()),
            ("ecn_ok", self.ecn_ok.show()),
        ]
    }
}

/// `sack_ok` is upstream's `TCP_SACK_SEEN` (1) or 0; accept a bool too.
fn int_bool<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum B {
        B(bool),
        N(u64),
    }
    Ok(match B::deserialize(d)? {
        B::B(b) => b,
        B::N(n) => n != 0,
    })
}

fn decode_out(tsecr: u32, saw: bool, sysctl: TsSysctls) -> DecodeOut {
    let d = linux::timestamp_decode(tsecr, saw, sysctl);
    DecodeOut {
        ok: d.ok,
        wscale_ok: d.wscale_ok,
        snd_wscale: d.snd_wscale,
        sack_ok: d.sack_ok,
        ecn_ok: d.ecn_ok,
    }
}

pub(crate) fn check_ts(file: &TsFile, t: &mut Tally) -> Result<(), String> {
    for (idx, c) in file.encode.iter().enumerate() {
        let id = c.id.unwrap_or(idx as u64);
        let loc = || format!("encode {id} (ts_now={})", c.ts_now);
        let ts = linux::init_timestamp(c.ts_now, c.wscale_ok, c.snd_wscale, c.sack_ok, c.ecn_ok);
        t.opt_field(&loc, "ts_ns", c.ts_ns, ts.wrapping_mul(1_000_000));
        t.opt_field(&loc, "tsval", c.tsval, ts as u32);
        t.opt_field(&loc, "options", c.options, ts as u32 & 63);
        t.opt_record(
            &loc,
            "decode_of_tsval",
            c.decode_of_tsval.as_ref(),
            &decode_out(ts as u32, true, TsSysctls::default()),
        );
        t.end_item();
    }
    for (idx, c) in file.decode.iter().enumerate() {
        let id = c.id.unwrap_or(idx as u64);
        let loc = || {
            format!(
                "decode {id} (tsecr={:#x}, saw_tstamp={})",
                c.tsecr, c.saw_tstamp
            )
        };
        let sysctl = TsSysctls {
            timestamps: c.sysctl_tcp_timestamps != 0,
            sack: c.sysctl_tcp_sack != 0,
            window_scaling: c.sysctl_tcp_window_scaling != 0,
        };
        t.record(
            &loc,
            "decode",
            Some(&c.out),
            Some(&decode_out(c.tsecr, c.saw_tstamp, sysctl)),
        );
        t.end_item();
    }
    Ok(())
}
