//! FreeBSD's SipHash-2-4 syncookie, bit-exact with `sys/netinet/tcp_syncache.c`
//! (`syncookie_mac`, `syncookie_generate`, `syncookie_lookup`).
//!
//! The ISN is `mac32 & 0xFFFFFF00 | (flags ^ mac32 >> 24)`: 24 MAC bits and a flags byte (odd/even
//! secret, SACK, 3-bit WSCALE index, 3-bit MSS index) hidden under the MAC's top byte. Note the
//! upstream header comment draws the fields in another order than the code lays them out; the
//! code wins.

use crate::{
    Ack, Addrs, Clock, CookieCodec, Decoded, Diagnosis, Flow, Issued, KeysTried, MssTable,
    Rejection, SipKey, Syn,
};

/// `tcp_sc_msstab`.
pub const MSS_TABLE: MssTable<8> =
    MssTable::new_unchecked([216, 536, 1200, 1360, 1400, 1440, 1452, 1460]);
/// `tcp_sc_wstab`.
pub const WSCALE_TABLE: [u8; 8] = [0, 0, 1, 2, 4, 6, 7, 8];

/// The `union syncookie` flags byte as gcc/clang lay out the bitfield on little-endian.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Flags(pub u8);

impl Flags {
    /// Build from fields.
    pub fn new(odd_even: u8, sack_ok: bool, wscale_idx: u8, mss_idx: u8) -> Self {
        Flags((odd_even & 1) | (sack_ok as u8) << 1 | (wscale_idx & 7) << 2 | (mss_idx & 7) << 5)
    }
    /// Which secret (0 or 1).
    pub fn odd_even(self) -> u8 {
        self.0 & 1
    }
    /// SACK bit.
    pub fn sack_ok(self) -> bool {
        self.0 & 2 != 0
    }
    /// Index into [`WSCALE_TABLE`]; 0 = no window scaling.
    pub fn wscale_idx(self) -> u8 {
        (self.0 >> 2) & 7
    }
    /// Index into [`MSS_TABLE`].
    pub fn mss_idx(self) -> u8 {
        self.0 >> 5
    }
}

/// `V_tcp_syncache.secret`: two keys and the odd/even selector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Secret {
    /// `key[0]`, `key[1]`.
    pub keys: [SipKey; 2],
    /// `oddeven`: the key new cookies use is `keys[oddeven & 1]`.
    pub oddeven: u8,
}

/// `mss_idx` for a peer MSS (0 = no MSS option).
pub fn mss_index(peer_mss: u16) -> u8 {
    MSS_TABLE.index_at_or_below(Some(peer_mss)) as u8
}

/// `wscale_idx` for a requested shift (`None` = no option); a shift of 0 gives index 1.
pub fn wscale_index(requested: Option<u8>) -> u8 {
    match requested {
        None => 0,
        Some(ws) => {
            let mut i = WSCALE_TABLE.len() - 1;
            while i > 1 && WSCALE_TABLE[i] > ws {
                i -= 1;
            }
            i as u8
        }
    }
}

/// `syncookie_mac`: the MAC input (25 or 49 bytes) into `buf`, returning its length.
pub fn mac_input(flow: &Flow, irs: u32, flags: Flags, secmod: u64, buf: &mut [u8; 49]) -> usize {
    let at = match &flow.addrs {
        Addrs::V4 { client, service } => {
            buf[0..4].copy_from_slice(client);
            buf[4..8].copy_from_slice(service);
            8
        }
        Addrs::V6 { client, service } => {
            buf[0..16].copy_from_slice(client);
            buf[16..32].copy_from_slice(service);
            32
        }
    };
    buf[at..at + 2].copy_from_slice(&flow.client_port.to_be_bytes());
    buf[at + 2..at + 4].copy_from_slice(&flow.service_port.to_be_bytes());
    // irs and the bucket pointer are hashed in host order (amd64: little-endian).
    buf[at + 4..at + 8].copy_from_slice(&irs.to_le_bytes());
    buf[at + 8] = flags.0;
    buf[at + 9..at + 17].copy_from_slice(&secmod.to_le_bytes());
    at + 17
}

/// `syncookie_mac`: `(u32)r ^ (u32)(r >> 32)` with `r` the SipHash of [`mac_input`].
pub fn mac32(key: &SipKey, flow: &Flow, irs: u32, flags: Flags, secmod: u64) -> u32 {
    let mut buf = [0u8; 49];
    let len = mac_input(flow, irs, flags, secmod, &mut buf);
    let r = key.hash(&buf[..len]);
    r as u32 ^ (r >> 32) as u32
}

/// `syncookie_generate`: the ISN and the flags byte it hides.
pub fn generate(
    secret: &Secret,
    flow: &Flow,
    irs: u32,
    peer_mss: u16,
    wscale: Option<u8>,
    sack_ok: bool,
    secmod: u64,
) -> (u32, Flags) {
    let odd_even = secret.oddeven & 1;
    let flags = Flags::new(odd_even, sack_ok, wscale_index(wscale), mss_index(peer_mss));
    let m = mac32(&secret.keys[odd_even as usize], flow, irs, flags, secmod);
    let iss = (m & 0xffff_ff00) | (flags.0 as u32 ^ (m >> 24));
    (iss, flags)
}

/// What `syncookie_lookup` restores from a valid cookie.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Restored {
    /// `tcp_sc_msstab[mss_idx]`.
    pub mss: u16,
    /// `tcp_sc_wstab[wscale_idx]`, or `None` for index 0.
    pub wscale: Option<u8>,
    /// SACK bit.
    pub sack_ok: bool,
}

/// `syncookie_lookup`: `iss` and `irs` are the ACK's `th_ack - 1` and `th_seq - 1`. The key is the
/// one the cookie's own odd/even bit names.
pub fn lookup(
    keys: &[SipKey; 2],
    flow: &Flow,
    iss: u32,
    irs: u32,
    secmod: u64,
) -> Option<Restored> {
    let flags = Flags(((iss & 0xff) ^ (iss >> 24)) as u8);
    let m = mac32(&keys[flags.odd_even() as usize], flow, irs, flags, secmod);
    if (iss & !0xff) != (m & !0xff) {
        return None;
    }
    let wi = flags.wscale_idx();
    Some(Restored {
        mss: MSS_TABLE.value(flags.mss_idx() as usize),
        wscale: (wi > 0).then_some(WSCALE_TABLE[wi as usize]),
        sack_ok: flags.sack_ok(),
    })
}

/// FreeBSD behind [`CookieCodec`]. Timestamps are not in the cookie: FreeBSD re-enables them when
/// the ACK carries them, and never restores ECN.
#[derive(Clone, Copy, Debug)]
pub struct FreeBsd {
    /// The secrets.
    pub secret: Secret,
    /// The syncache bucket pointer mixed into the MAC (`(uintptr_t)sch`).
    pub secmod: u64,
}

impl CookieCodec for FreeBsd {
    fn name(&self) -> &'static str {
        "freebsd"
    }

    fn generate(&self, syn: &Syn, now: Clock) -> Issued {
        let o = &syn.options;
        let (isn, _) = generate(
            &self.secret,
            &syn.flow,
            syn.isn,
            o.mss.unwrap_or(0),
            o.wscale.map(|w| w.min(14)),
            o.sack_permitted,
            self.secmod,
        );
        Issued {
            isn,
            tsval: o.timestamps.then_some(now.ms as u32),
            ecn: false,
        }
    }

    fn validate(&self, ack: &Ack, _now: Clock) -> Option<Decoded> {
        let r = lookup(
            &self.secret.keys,
            &ack.flow,
            ack.ack.wrapping_sub(1),
            ack.seq.wrapping_sub(1),
            self.secmod,
        )?;
        Some(Decoded {
            mss: r.mss,
            wscale: r.wscale,
            sack_ok: r.sack_ok,
            tstamp_ok: ack.timestamps.is_some(),
            ecn_ok: false,
        })
    }

    fn keys_tried(&self) -> u32 {
        1
    }

    fn mac_bits(&self, _timestamps: bool) -> u32 {
        24
    }

    fn diagnose(&self, ack: &Ack, now: Clock) -> Diagnosis {
        let iss = ack.ack.wrapping_sub(1);
        let flags = Flags(((iss & 0xff) ^ (iss >> 24)) as u8);
        Diagnosis {
            tried: KeysTried::Secret(flags.odd_even()),
            result: self
                .validate(ack, now)
                .ok_or(Rejection::MacMismatch { searched: None }),
        }
    }
}
