//! `synwall_v1.json`: generation (salt, opt, ext, MAC, cookie, TSval) and validation checks.

use crate::util::{check_family, flow, hex_array};
use crate::{Fields, Show, Tally};
use serde::Deserialize;
use synwall_cookie::synwall_v1::{self as v1, Config, EpochKeys, MasterSecret};
use synwall_cookie::{Ack, MssTable, Syn, SynOptions, Timestamps};

#[derive(Deserialize)]
pub(crate) struct File {
    mss_table_v4: Option<[u16; 8]>,
    mss_table_v6: Option<[u16; 8]>,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    id: Option<u64>,
    master_hex: String,
    period: u64,
    unix_time: u64,
    family: u8,
    client: String,
    service: String,
    client_port: u16,
    service_port: u16,
    client_isn: u32,
    syn: SynIn,
    clock_ms: u64,
    expect: Expect,
    #[serde(default)]
    checks: Vec<Check>,
}

#[derive(Deserialize)]
struct SynIn {
    mss: Option<u16>,
    wscale: Option<u8>,
    sack: bool,
    ts: bool,
    ece_cwr: bool,
}

#[derive(Deserialize)]
struct Expect {
    salt_hex: Option<String>,
    opt: Option<u8>,
    ext: Option<u8>,
    mac_hex: Option<String>,
    cookie: Option<u32>,
    // `null` is a real expectation ("no TSval"), so a present null must be told from an absent key.
    #[serde(default, deserialize_with = "present")]
    tsval: Option<Option<u32>>,
}

#[derive(Deserialize)]
struct Check {
    unix_time: u64,
    ack: u32,
    seq: u32,
    tsecr: Option<u32>,
    decoded: Option<DecodedOut>,
}

#[derive(Deserialize, Debug, PartialEq, Eq)]
struct DecodedOut {
    mss: u16,
    wscale_ok: bool,
    snd_wscale: u8,
    sack_ok: bool,
    tstamp_ok: bool,
    ecn_ok: bool,
}

impl Fields for DecodedOut {
    fn fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("mss", self.mss.show()),
            ("wscale_ok", self.wscale_ok.show()),
            ("snd_wscale", self.snd_wscale.show()),
            ("sack_ok", self.sack_ok.show()),
            ("tstamp_ok", self.tstamp_ok.show()),
            ("ecn_ok", self.ecn_ok.show()),
        ]
    }
}

fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

fn table(t: Option<[u16; 8]>, default: [u16; 8], name: &str) -> Result<MssTable<8>, String> {
    MssTable::new(t.unwrap_or(default)).map_err(|e| format!("{name}: {e}"))
}

pub(crate) fn check(file: &File, t: &mut Tally) -> Result<(), String> {
    let cfg = Config {
        mss_v4: table(file.mss_table_v4, v1::DEFAULT_MSS_V4, "mss_table_v4")?,
        mss_v6: table(file.mss_table_v6, v1::DEFAULT_MSS_V6, "mss_table_v6")?,
        ..Config::default()
    };
    for (idx, c) in file.cases.iter().enumerate() {
        let id = c.id.unwrap_or(idx as u64);
        let ctx = |e: String| format!("case {id}: {e}");
        if c.period == 0 {
            return Err(ctx("period must be positive".into()));
        }
        let master = MasterSecret(hex_array::<32>("master_hex", &c.master_hex).map_err(ctx)?);
        let fl = flow(&c.client, &c.service, c.client_port, c.service_port).map_err(ctx)?;
        check_family(c.family, &fl).map_err(ctx)?;
        let syn = Syn {
            flow: fl,
            isn: c.client_isn,
            options: SynOptions {
                mss: c.syn.mss,
                wscale: c.syn.wscale,
                sack_permitted: c.syn.sack,
                timestamps: c.syn.ts,
                ece_cwr: c.syn.ece_cwr,
            },
        };

        // Generation.
        let loc = || format!("case {id} (generate)");
        let epoch = v1::epoch_of(c.unix_time, c.period);
        let salt = v1::derive_salt(&master, epoch);
        let key = synwall_cookie::SipKey::from_bytes(&salt);
        let bits = v1::encode_options(&cfg, &fl.addrs, &syn.options);
        let mac = v1::mac(&key, &fl, syn.isn, bits);
        let issued = v1::generate(&cfg, &key, &syn, c.clock_ms);
        let e = &c.expect;
        t.opt_field(
            &loc,
            "salt_hex",
            e.salt_hex.as_deref().map(str::to_ascii_lowercase),
            hex::encode(salt),
        );
        t.opt_field(&loc, "opt", e.opt, bits.opt);
        t.opt_field(&loc, "ext", e.ext, bits.ext);
        t.opt_field(
            &loc,
            "mac_hex",
            e.mac_hex.as_deref().map(str::to_ascii_lowercase),
            format!("{mac:016x}"),
        );
        t.opt_field(&loc, "cookie", e.cookie, issued.isn);
        t.opt_field(&loc, "tsval", e.tsval, issued.tsval);
        t.end_item();

        // Validation.
        for (ci, k) in c.checks.iter().enumerate() {
            let loc = || {
                format!(
                    "case {id} check {ci} (unix_time={}, ack={}, seq={}, tsecr={})",
                    k.unix_time,
                    k.ack,
                    k.seq,
                    k.tsecr.show()
                )
            };
            let keys = EpochKeys::derive(&master, v1::epoch_of(k.unix_time, c.period));
            let ack = Ack {
                flow: fl,
                seq: k.seq,
                ack: k.ack,
                timestamps: k.tsecr.map(|tsecr| Timestamps { tsval: 0, tsecr }),
            };
            let got = v1::validate(&cfg, &keys, &ack).map(|d| DecodedOut {
                mss: d.mss,
                wscale_ok: d.wscale.is_some(),
                snd_wscale: d.wscale.unwrap_or(0),
                sack_ok: d.sack_ok,
                tstamp_ok: d.tstamp_ok,
                ecn_ok: d.ecn_ok,
            });
            t.record(&loc, "decoded", k.decoded.as_ref(), got.as_ref());
            t.end_item();
        }
    }
    Ok(())
}
