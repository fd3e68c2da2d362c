//! What each cookie scheme keeps and loses of real SYNs: `synwall analyze` feeds every SYN of a
//! capture through each scheme's generate -> validate round trip and compares the restored options
//! with the SYN's. An offline comparison of schemes, not the data path: it lives beside its
//! command and borrows the engine's parser.

use synwall_cookie::freebsd::{FreeBsd, Secret};
use synwall_cookie::linux::{Linux, Secrets};
use synwall_cookie::synwall_v1::{Config, MasterSecret, SynwallV1};
use synwall_cookie::{Ack, Clock, CookieCodec, Decoded, SipKey, Syn, SynOptions, Timestamps};
use synwall_engine::engine::syn_options;
use synwall_engine::parse::{parse, Parsed};
use synwall_engine::services::{Service, ServiceSet};
use synwall_wire::tcp::{self, TcpSegment};

/// Losses of one scheme over all SYNs seen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SchemeLoss {
    /// Scheme label (`linux-no-ts` = Linux for the same SYN without its Timestamps option).
    pub name: &'static str,
    /// SYNs considered.
    pub syns: u64,
    /// Restored MSS equal to the SYN's (536 / 1220 when it had none).
    pub mss_exact: u64,
    /// Restored MSS below the SYN's.
    pub mss_lower: u64,
    /// Sum of the bytes lost by rounding down.
    pub mss_loss_sum: u64,
    /// Largest loss in bytes.
    pub mss_loss_max: u64,
    /// Restored MSS above the SYN's (the SYN's MSS was below the table's smallest entry).
    pub mss_raised: u64,
    /// SYNs with window scaling whose scale was lost.
    pub wscale_lost: u64,
    /// SYNs whose window scale came back different (rounded).
    pub wscale_changed: u64,
    /// SACK-Permitted lost.
    pub sack_lost: u64,
    /// Timestamps lost.
    pub ts_lost: u64,
    /// ECN requested (ECE+CWR) but not restored.
    pub ecn_lost: u64,
    /// The cookie did not validate (never expected; counted so nothing hides).
    pub rejected: u64,
}

/// The analysis of a capture.
pub struct Analysis {
    /// SYNs analysed.
    pub syns: u64,
    /// Frames that looked like TCP SYNs but were malformed (skipped).
    pub malformed: u64,
    /// One entry per scheme, in [`Analysis::SCHEMES`] order.
    pub schemes: Vec<SchemeLoss>,
    codecs: Vec<Box<dyn CookieCodec>>,
    all: ServiceSet,
}

const NOW: Clock = Clock {
    unix_secs: 1_800_000_000,
    ms: 1_000_000,
};

impl Default for Analysis {
    fn default() -> Self {
        Self::new()
    }
}

impl Analysis {
    /// The schemes compared, in order.
    pub const SCHEMES: [&'static str; 4] = ["synwall-v1", "linux", "linux-no-ts", "freebsd"];

    /// An empty analysis.
    pub fn new() -> Self {
        let k = |b: u8| SipKey::from_bytes(&[b; 16]);
        let codecs: Vec<Box<dyn CookieCodec>> = vec![
            Box::new(SynwallV1::new(
                MasterSecret([9; 32]),
                60,
                Config::default(),
                NOW.unix_secs,
            )),
            Box::new(Linux {
                secrets: Secrets([k(1), k(2)]),
            }),
            Box::new(Linux {
                secrets: Secrets([k(1), k(2)]),
            }),
            Box::new(FreeBsd {
                secret: Secret {
                    keys: [k(3), k(4)],
                    oddeven: 1,
                },
                secmod: 0xffff_f800_0000_1000,
            }),
        ];
        let any = |s: &str| s.parse::<Service>().expect("static service");
        Analysis {
            syns: 0,
            malformed: 0,
            schemes: Self::SCHEMES
                .iter()
                .map(|&name| SchemeLoss {
                    name,
                    ..SchemeLoss::default()
                })
                .collect(),
            codecs,
            all: ServiceSet::new(vec![any("0.0.0.0/0:1-65535"), any("[::/0]:1-65535")]),
        }
    }

    /// Look at one frame; returns true if it was a SYN that was analysed.
    pub fn add_frame(&mut self, frame: &[u8]) -> bool {
        let f = match parse(frame, &self.all) {
            Parsed::Tcp(f) if f.flags & (tcp::SYN | tcp::ACK) == tcp::SYN => f,
            _ => return false,
        };
        let opts = match TcpSegment::new_unchecked(f.segment(frame)).options() {
            Ok(o) => o,
            Err(_) => {
                self.malformed += 1;
                return false;
            }
        };
        let syn = Syn {
            flow: f.flow(),
            isn: f.seq,
            options: syn_options(&opts, f.flags),
        };
        self.add_syn(&syn);
        true
    }

    /// Account one SYN.
    pub fn add_syn(&mut self, syn: &Syn) {
        self.syns += 1;
        for (i, codec) in self.codecs.iter().enumerate() {
            let mut s = *syn;
            if Self::SCHEMES[i] == "linux-no-ts" {
                s.options.timestamps = false;
            }
            let issued = codec.generate(&s, NOW);
            let ack = Ack {
                flow: s.flow,
                seq: s.isn.wrapping_add(1),
                ack: issued.isn.wrapping_add(1),
                timestamps: issued.tsval.map(|tsecr| Timestamps { tsval: 7, tsecr }),
            };
            let loss = &mut self.schemes[i];
            loss.syns += 1;
            match codec.validate(&ack, NOW) {
                Some(d) => account(loss, &s.options, s.flow.addrs.is_v6(), &d),
                None => loss.rejected += 1,
            }
        }
    }
}

fn account(l: &mut SchemeLoss, o: &SynOptions, v6: bool, d: &Decoded) {
    // RFC 9293 / RFC 8200: without an MSS option the peer must assume 536 (IPv4) or 1220 (IPv6).
    let mss = o.mss.unwrap_or(if v6 { 1220 } else { 536 }) as u64;
    let got = d.mss as u64;
    if got == mss {
        l.mss_exact += 1;
    } else if got < mss {
        l.mss_lower += 1;
        l.mss_loss_sum += mss - got;
        l.mss_loss_max = l.mss_loss_max.max(mss - got);
    } else {
        l.mss_raised += 1;
    }
    match (o.wscale.map(|w| w.min(14)), d.wscale) {
        (Some(_), None) => l.wscale_lost += 1,
        (Some(a), Some(b)) if a != b => l.wscale_changed += 1,
        _ => {}
    }
    l.sack_lost += (o.sack_permitted && !d.sack_ok) as u64;
    l.ts_lost += (o.timestamps && !d.tstamp_ok) as u64;
    l.ecn_lost += (o.ece_cwr && !d.ecn_ok) as u64;
}
