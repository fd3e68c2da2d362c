//! `freebsd.json`: `syncookie_generate` outputs (flags, MAC input and MAC, ISN) and
//! `syncookie_lookup` on the case's lookup inputs (positive and negative cases).

use crate::util::{check_family, flow, sip_key};
use crate::{Fields, Show, Tally};
use serde::Deserialize;
use synwall_cookie::freebsd::{self, Secret};

#[derive(Deserialize)]
pub(crate) struct File {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    id: Option<u64>,
    kind: Option<String>,
    family: u8,
    key0_hex: String,
    key1_hex: String,
    oddeven: u8,
    faddr: String,
    laddr: String,
    fport: u16,
    lport: u16,
    irs: u32,
    peer_mss: u16,
    wscale_requested: Option<u8>,
    sack_ok: bool,
    secmod: u64,
    secmod_hex: Option<String>,
    flags_byte: Option<u8>,
    flags: Option<FlagsOut>,
    mac_input_hex: Option<String>,
    mac_hex: Option<String>,
    mac_le_bytes_hex: Option<String>,
    mac32: Option<u32>,
    iss: Option<u32>,
    lookup_iss: u32,
    lookup_irs: u32,
    lookup_key0_hex: String,
    lookup_key1_hex: String,
    lookup_secmod: u64,
    lookup_secmod_hex: Option<String>,
    decoded: Option<DecodedOut>,
    valid: bool,
}

#[derive(Deserialize, Debug, PartialEq, Eq)]
struct FlagsOut {
    odd_even: u8,
    sack_ok: u8,
    wscale_idx: u8,
    mss_idx: u8,
}

#[derive(Deserialize, Debug, PartialEq, Eq)]
struct DecodedOut {
    mss: u16,
    wscale: Option<u8>,
    sack_ok: bool,
}

impl Fields for FlagsOut {
    fn fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("odd_even", self.odd_even.show()),
            ("sack_ok", self.sack_ok.show()),
            ("wscale_idx", self.wscale_idx.show()),
            ("mss_idx", self.mss_idx.show()),
        ]
    }
}

impl Fields for DecodedOut {
    fn fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("mss", self.mss.show()),
            ("wscale", self.wscale.show()),
            ("sack_ok", self.sack_ok.show()),
        ]
    }
}

/// A u64 given both as a JSON number and as 16 hex digits: the hex twin wins (JSON readers that go
/// through doubles lose bits above 2^53), and the two must agree.
fn u64_twin(field: &str, n: u64, hex: Option<&str>) -> Result<u64, String> {
    let Some(h) = hex else { return Ok(n) };
    let v = u64::from_str_radix(h, 16).map_err(|e| format!("{field}_hex: {e}"))?;
    if v != n {
        return Err(format!("{field} ({n}) and {field}_hex ({h}) disagree"));
    }
    Ok(v)
}

pub(crate) fn check(file: &File, t: &mut Tally) -> Result<(), String> {
    for (idx, c) in file.cases.iter().enumerate() {
        let id = c.id.unwrap_or(idx as u64);
        let ctx = |e: String| format!("case {id}: {e}");
        let secret = Secret {
            keys: [
                sip_key("key0_hex", &c.key0_hex).map_err(ctx)?,
                sip_key("key1_hex", &c.key1_hex).map_err(ctx)?,
            ],
            oddeven: c.oddeven,
        };
        let lookup_keys = [
            sip_key("lookup_key0_hex", &c.lookup_key0_hex).map_err(ctx)?,
            sip_key("lookup_key1_hex", &c.lookup_key1_hex).map_err(ctx)?,
        ];
        let secmod = u64_twin("secmod", c.secmod, c.secmod_hex.as_deref()).map_err(ctx)?;
        let lookup_secmod = u64_twin(
            "lookup_secmod",
            c.lookup_secmod,
            c.lookup_secmod_hex.as_deref(),
        )
        .map_err(ctx)?;
        let fl = flow(&c.faddr, &c.laddr, c.fport, c.lport).map_err(ctx)?;
        check_family(c.family, &fl).map_err(ctx)?;

        let kind = c.kind.as_deref().unwrap_or("positive");
        let loc = || format!("case {id} ({kind})");
        let (iss, flags) = freebsd::generate(
            &secret,
            &fl,
            c.irs,
            c.peer_mss,
            c.wscale_requested,
            c.sack_ok,
            secmod,
        );
        t.opt_field(&loc, "flags_byte", c.flags_byte, flags.0);
        t.opt_record(
            &loc,
            "flags",
            c.flags.as_ref(),
            &FlagsOut {
                odd_even: flags.odd_even(),
                sack_ok: flags.sack_ok() as u8,
                wscale_idx: flags.wscale_idx(),
                mss_idx: flags.mss_idx(),
            },
        );
        let mut buf = [0u8; 49];
        let len = freebsd::mac_input(&fl, c.irs, flags, secmod, &mut buf);
        t.opt_field(
            &loc,
            "mac_input_hex",
            c.mac_input_hex.as_deref(),
            hex::encode(&buf[..len]).as_str(),
        );
        let key = &secret.keys[flags.odd_even() as usize];
        let r = key.hash(&buf[..len]);
        t.opt_field(
            &loc,
            "mac_hex",
            c.mac_hex.as_deref(),
            format!("{r:016x}").as_str(),
        );
        t.opt_field(
            &loc,
            "mac_le_bytes_hex",
            c.mac_le_bytes_hex.as_deref(),
            hex::encode(r.to_le_bytes()).as_str(),
        );
        t.opt_field(
            &loc,
            "mac32",
            c.mac32,
            freebsd::mac32(key, &fl, c.irs, flags, secmod),
        );
        t.opt_field(&loc, "iss", c.iss, iss);

        let restored =
            freebsd::lookup(&lookup_keys, &fl, c.lookup_iss, c.lookup_irs, lookup_secmod);
        t.field(&loc, "valid", c.valid, restored.is_some());
        let got = restored.map(|r| DecodedOut {
            mss: r.mss,
            wscale: r.wscale,
            sack_ok: r.sack_ok,
        });
        t.record(&loc, "decoded", c.decoded.as_ref(), got.as_ref());
        t.end_item();
    }
    Ok(())
}
