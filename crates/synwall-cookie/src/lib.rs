//! SYN cookie codecs for synwall.
//!
//! This crate owns the cookie: what goes into the ISN (and, with timestamps, into TSval) of a SYN+ACK,
//! and how the returning ACK is validated and decoded. It has no allocation and no I/O, so the packet
//! engine calls it per packet and the BPF C (`bpf/lib/cookie.h`) mirrors it line for line.
//!
//! Three schemes share one small API, [`CookieCodec`]:
//! - [`synwall_v1`]: the synwall wire format (`shared/SPEC.md` sections 2-6): `S|WWWW|MMM|H24` ISN,
//!   SipHash-2-4 under a rolling salt derived from one master secret, 7 more MAC bits and ECN in TSval.
//! - [`linux`]: the Linux ISN cookie (`net/ipv{4,6}/syncookies.c`) plus the Linux timestamp cookie.
//! - [`freebsd`]: FreeBSD's `tcp_syncache.c` SipHash cookie.
//!
//! Each scheme also exposes the lower-level functions the upstream code has, so the test vectors
//! (which fix secrets, counters and clocks) are checked against exactly those functions.
#![no_std]
#![deny(unsafe_code)]
#![warn(missing_docs)]

#[cfg(any(test, feature = "std"))]
extern crate std;

pub mod freebsd;
pub mod linux;
mod mss;
mod siphash;
pub mod synwall_v1;

pub use mss::{MssTable, MssTableError};
pub use siphash::{SipKey, LANES};

/// The two addresses of a flow, in network byte order as on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Addrs {
    /// IPv4: client (the SYN's source) and service (its destination).
    V4 {
        /// The SYN's source address.
        client: [u8; 4],
        /// The SYN's destination address.
        service: [u8; 4],
    },
    /// IPv6: client and service.
    V6 {
        /// The SYN's source address.
        client: [u8; 16],
        /// The SYN's destination address.
        service: [u8; 16],
    },
}

impl Addrs {
    /// True for IPv6.
    pub fn is_v6(&self) -> bool {
        matches!(self, Addrs::V6 { .. })
    }
}

/// A TCP flow as seen from the protected service: the SYN's source is the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Flow {
    /// Client and service addresses.
    pub addrs: Addrs,
    /// The SYN's source port (host order).
    pub client_port: u16,
    /// The SYN's destination port (host order).
    pub service_port: u16,
}

/// The TCP options of a SYN that a cookie can carry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SynOptions {
    /// MSS option value; `None` if the SYN had no MSS option.
    pub mss: Option<u16>,
    /// Window-scale shift as sent (may exceed 14); `None` if the SYN had no window-scale option.
    pub wscale: Option<u8>,
    /// SACK-Permitted present.
    pub sack_permitted: bool,
    /// Timestamps option present.
    pub timestamps: bool,
    /// ECE and CWR both set in the SYN (an ECN setup SYN, RFC 3168).
    pub ece_cwr: bool,
}

/// A SYN: its flow, sequence number and options.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Syn {
    /// The flow, client = the SYN's source.
    pub flow: Flow,
    /// The SYN's sequence number (the client ISN).
    pub isn: u32,
    /// The SYN's options.
    pub options: SynOptions,
}

/// The Timestamps option of a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Timestamps {
    /// TSval.
    pub tsval: u32,
    /// TSecr.
    pub tsecr: u32,
}

/// A handshake-completing ACK, as the validator sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ack {
    /// The flow, client = the ACK's source.
    pub flow: Flow,
    /// The ACK's sequence number (client ISN + 1).
    pub seq: u32,
    /// The ACK's acknowledgment number (cookie + 1).
    pub ack: u32,
    /// The ACK's Timestamps option, if it carries one.
    pub timestamps: Option<Timestamps>,
}

/// What a codec puts into the SYN+ACK.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Issued {
    /// The SYN+ACK's sequence number (the cookie).
    pub isn: u32,
    /// The SYN+ACK's TSval when timestamps are negotiated; `None` when the SYN+ACK carries none.
    pub tsval: Option<u32>,
    /// ECN negotiated (the SYN+ACK sets ECE).
    pub ecn: bool,
}

/// Connection parameters restored from a valid cookie (what the backend hands the kernel).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Decoded {
    /// The client's MSS after table rounding.
    pub mss: u16,
    /// The client's window-scale shift; `None` = no window scaling.
    pub wscale: Option<u8>,
    /// SACK permitted.
    pub sack_ok: bool,
    /// Timestamps negotiated.
    pub tstamp_ok: bool,
    /// ECN negotiated.
    pub ecn_ok: bool,
}

/// The clocks a codec may read: wall-clock seconds (epochs, Linux's minute counter) and a node-local
/// millisecond clock (TSval).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Clock {
    /// Seconds since the Unix epoch.
    pub unix_secs: u64,
    /// A millisecond clock; only its low 32 bits reach the wire.
    pub ms: u64,
}

/// The keys a validation tried, scheme by scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeysTried {
    /// synwall-v1: the salts of these epochs, the current one first (`e`, `e - 1`).
    Epochs([u64; 2]),
    /// Linux: the cookie may be this many minute-counter steps old, counting back from `now`.
    Counters {
        /// The minute counter at validation time.
        now: u32,
        /// How many counter values are accepted (`now`, `now - 1`, ...).
        accepted: u32,
    },
    /// FreeBSD: the secret the cookie's odd/even bit names (0 or 1).
    Secret(u8),
}

/// Why an ACK did not validate, as far as the scheme can tell. Only the tools ask (`synwall cookie
/// check`); the data path never does, and [`CookieCodec::diagnose`] decides validity exactly as
/// [`CookieCodec::validate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rejection {
    /// The MAC does not match under any key tried, nor (synwall-v1) under the salt of any epoch
    /// in `searched`: the cookie was not issued for this flow and client ISN with this secret.
    MacMismatch {
        /// synwall-v1: the other epochs also tried, `(first, last)`; `None` for other schemes.
        searched: Option<(u64, u64)>,
    },
    /// synwall-v1: the MAC matches under the salt of `epoch`, which is neither of the two
    /// accepted ones: the cookie expired (an earlier epoch) or comes from a clock ahead of this
    /// one (a later epoch).
    OtherEpoch {
        /// The epoch whose salt makes the MAC match.
        epoch: u64,
    },
    /// synwall-v1: the ACK carries no Timestamps option, but the cookie was issued to a SYN
    /// with timestamps (its MAC matches only with the timestamp bit set): the ACK's TSecr is
    /// part of the cookie.
    TimestampsMissing {
        /// The epoch whose salt matches.
        epoch: u64,
    },
    /// synwall-v1: the ACK carries a Timestamps option, but the cookie was issued to a SYN
    /// without timestamps (its MAC matches only with the timestamp bit clear).
    TimestampsUnexpected {
        /// The epoch whose salt matches.
        epoch: u64,
    },
    /// synwall-v1: the cookie's 24 MAC bits match, but the TSecr's 7 MAC bits or its ECN bit
    /// do not: the TSecr is not the TSval of the SYN+ACK that carried this cookie.
    TsecrMismatch {
        /// The epoch whose salt matches.
        epoch: u64,
    },
    /// Linux: the cookie was issued at minute counter `issued`, more than the accepted number
    /// of minutes before `now`.
    Expired {
        /// The minute counter the cookie was issued at.
        issued: u32,
        /// The minute counter at validation time.
        now: u32,
    },
}

/// The outcome of [`CookieCodec::diagnose`]: what was tried, and the restored options or why not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Diagnosis {
    /// The keys the validator tried.
    pub tried: KeysTried,
    /// The restored options (exactly [`CookieCodec::validate`]'s answer), or why there are none.
    pub result: Result<Decoded, Rejection>,
}

/// The common API of every cookie scheme: generate a cookie for a SYN, validate and decode an ACK.
pub trait CookieCodec: Send + Sync {
    /// The scheme's stable name (`synwall-v1`, `linux`, `freebsd`).
    fn name(&self) -> &'static str;
    /// The cookie (and TSval) for the SYN+ACK that answers `syn` at time `now`.
    fn generate(&self, syn: &Syn, now: Clock) -> Issued;
    /// Validate `ack` at time `now`; `Some` with the restored options iff the cookie is valid.
    fn validate(&self, ack: &Ack, now: Clock) -> Option<Decoded>;
    /// How many independent keys a validation may try (for the forgery bound): 2 for synwall-v1
    /// and Linux (two epochs or counters), 1 for FreeBSD (the cookie names its key).
    fn keys_tried(&self) -> u32;
    /// MAC bits checked per key, without and with timestamps.
    fn mac_bits(&self, timestamps: bool) -> u32;
    /// [`CookieCodec::validate`], explained: the keys tried and, for an invalid ACK, the most
    /// likely reason. Slower than `validate` (it may try more keys); for tools, not packets.
    fn diagnose(&self, ack: &Ack, now: Clock) -> Diagnosis;
}
