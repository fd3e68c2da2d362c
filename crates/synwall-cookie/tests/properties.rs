//! Property tests of the cookie codecs: round trips, tamper resistance, expiry, and that the
//! batched (SIMD) paths decide exactly like the one-at-a-time paths.

use proptest::prelude::*;
use proptest::test_runner::{Config as PtConfig, RngSeed};
use synwall_cookie::freebsd::{self, FreeBsd, Secret};
use synwall_cookie::linux::{self, Linux, Secrets};
use synwall_cookie::synwall_v1::{self as v1, Config, EpochKeys, MasterSecret, SynwallV1};
use synwall_cookie::{
    Ack, Addrs, Clock, CookieCodec, Decoded, Flow, Issued, KeysTried, Rejection, SipKey, Syn,
    SynOptions, Timestamps,
};

fn arb_flow() -> impl Strategy<Value = Flow> {
    let addrs = prop_oneof![
        (any::<[u8; 4]>(), any::<[u8; 4]>())
            .prop_map(|(client, service)| Addrs::V4 { client, service }),
        (any::<[u8; 16]>(), any::<[u8; 16]>())
            .prop_map(|(client, service)| Addrs::V6 { client, service }),
    ];
    (addrs, any::<u16>(), any::<u16>()).prop_map(|(addrs, client_port, service_port)| Flow {
        addrs,
        client_port,
        service_port,
    })
}

fn arb_options() -> impl Strategy<Value = SynOptions> {
    let mss = prop_oneof![
        Just(None),
        (0u16..=65535).prop_map(Some),
        (500u16..1500).prop_map(Some)
    ];
    let wscale = prop_oneof![
        Just(None),
        (0u8..=20).prop_map(Some),
        any::<u8>().prop_map(Some)
    ];
    (mss, wscale, any::<bool>(), any::<bool>(), any::<bool>()).prop_map(
        |(mss, wscale, sack, ts, ecn)| SynOptions {
            mss,
            wscale,
            sack_permitted: sack,
            timestamps: ts,
            ece_cwr: ecn,
        },
    )
}

fn arb_syn() -> impl Strategy<Value = Syn> {
    (arb_flow(), any::<u32>(), arb_options()).prop_map(|(flow, isn, options)| Syn {
        flow,
        isn,
        options,
    })
}

/// The ACK a real client sends back for `issued` (TSecr echoes our TSval).
fn ack_for(syn: &Syn, issued: &Issued, client_tsval: u32) -> Ack {
    Ack {
        flow: syn.flow,
        seq: syn.isn.wrapping_add(1),
        ack: issued.isn.wrapping_add(1),
        timestamps: issued.tsval.map(|tsecr| Timestamps {
            tsval: client_tsval,
            tsecr,
        }),
    }
}

/// What synwall-v1 must restore for a SYN: its options after table rounding.
fn expected_v1(cfg: &Config, syn: &Syn) -> Decoded {
    let o = &syn.options;
    let table = cfg.mss_table(&syn.flow.addrs);
    Decoded {
        mss: table.value(table.index_at_or_below(o.mss)),
        wscale: o.wscale.map(|w| w.min(14)),
        sack_ok: o.sack_permitted,
        tstamp_ok: o.timestamps,
        ecn_ok: o.timestamps && o.ece_cwr,
    }
}

/// Fixed seeds where a rare false acceptance (2^-23 per forged ACK without timestamps) would
/// otherwise make a random-seed run fail once in a few hundred runs; the forge test measures that
/// rate itself.
fn fixed(seed: u64, cases: u32) -> PtConfig {
    PtConfig {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        ..PtConfig::default()
    }
}

proptest! {
    #[test]
    fn v1_round_trip(syn in arb_syn(), master: [u8; 32], t in 0u64..(1 << 40), period in 1u64..100_000, clock: u64, ts: u32) {
        let cfg = Config::default();
        let codec = SynwallV1::new(MasterSecret(master), period, cfg, t);
        let now = Clock { unix_secs: t, ms: clock };
        let issued = codec.generate(&syn, now);
        prop_assert_eq!(issued.tsval.is_some(), syn.options.timestamps);
        prop_assert_eq!(issued.ecn, syn.options.timestamps && syn.options.ece_cwr);
        if let Some(tsval) = issued.tsval {
            prop_assert_eq!(tsval & 0xffff_ff00, clock as u32 & 0xffff_ff00, "TSval keeps the clock's top 24 bits");
        }
        let d = codec.validate(&ack_for(&syn, &issued, ts), now);
        prop_assert_eq!(d, Some(expected_v1(&cfg, &syn)));
    }

    #[test]
    fn v1_expires_after_two_epochs(syn in arb_syn(), master: [u8; 32], t in (1u64 << 20)..(1 << 40), period in 1u64..10_000) {
        let codec = SynwallV1::new(MasterSecret(master), period, Config::default(), t);
        let at = |unix_secs| Clock { unix_secs, ms: 0 };
        let issued = codec.generate(&syn, at(t));
        let ack = ack_for(&syn, &issued, 1);
        let start = t - t % period;
        prop_assert!(codec.validate(&ack, at(start + period - 1)).is_some(), "same epoch");
        prop_assert!(codec.validate(&ack, at(start + 2 * period - 1)).is_some(), "next epoch");
        prop_assert!(codec.validate(&ack, at(start + 2 * period)).is_none(), "two epochs later");
        prop_assert!(codec.validate(&ack, at(start - 1)).is_none(), "an earlier epoch");
    }

    #[test]
    fn batch_equals_single(syns in proptest::collection::vec(arb_syn(), 0..40), v4_run in proptest::collection::vec(arb_flow(), 16), master: [u8; 32], e in 1u64..1 << 30, corrupt in any::<u64>()) {
        let cfg = Config::default();
        let keys = EpochKeys::derive(&MasterSecret(master), e);
        // Mixed families, plus a run of 16 IPv4 SYNs so full SIMD groups are exercised.
        let mut all = syns.clone();
        for (i, flow) in v4_run.into_iter().enumerate() {
            let flow = Flow { addrs: Addrs::V4 { client: [10, 0, 0, i as u8], service: [192, 0, 2, 1] }, ..flow };
            all.push(Syn { flow, isn: i as u32, options: SynOptions { timestamps: i % 2 == 0, ..SynOptions::default() } });
        }
        let mut batch = vec![Issued { isn: 0, tsval: None, ecn: false }; all.len()];
        v1::generate_batch(&cfg, &keys.current, &all, 77_000, &mut batch);
        let mut acks = Vec::new();
        for (i, (syn, got)) in all.iter().zip(&batch).enumerate() {
            prop_assert_eq!(*got, v1::generate(&cfg, &keys.current, syn, 77_000));
            let mut ack = ack_for(syn, got, 5);
            // Corrupt some ACKs so both outcomes (and the previous-key pass) are compared.
            if corrupt >> (i % 64) & 1 == 1 {
                ack.ack ^= 1 << (i % 32);
            }
            acks.push(ack);
        }
        let mut decided = vec![None; acks.len()];
        v1::validate_batch(&cfg, &keys, &acks, &mut decided);
        for (ack, got) in acks.iter().zip(&decided) {
            prop_assert_eq!(*got, v1::validate(&cfg, &keys, ack));
        }
    }

    #[test]
    fn linux_round_trip(syn in arb_syn(), s0: [u8; 16], s1: [u8; 16], t in 0u64..(1 << 38), clock in 64u64..(1 << 40)) {
        let codec = Linux { secrets: Secrets([SipKey::from_bytes(&s0), SipKey::from_bytes(&s1)]) };
        let now = Clock { unix_secs: t, ms: clock };
        let issued = codec.generate(&syn, now);
        let d = codec.validate(&ack_for(&syn, &issued, 9), now).expect("valid");
        let o = syn.options;
        let table = linux::mss_table(&syn.flow.addrs);
        prop_assert_eq!(d.mss, table.value(table.index_at_or_below(Some(o.mss.unwrap_or(table.value(0))))));
        // Without timestamps Linux loses window scaling, SACK and ECN: that is what cookies cost.
        let ts = o.timestamps;
        prop_assert_eq!(d.wscale, if ts { o.wscale.map(|w| w.min(14)) } else { None });
        prop_assert_eq!(d.sack_ok, ts && o.sack_permitted);
        prop_assert_eq!(d.ecn_ok, ts && o.ece_cwr);
        let later = Clock { unix_secs: t + 120, ms: clock };
        prop_assert!(codec.validate(&ack_for(&syn, &issued, 9), later).is_none(), "expired after two minutes");
    }

    #[test]
    fn freebsd_round_trip(syn in arb_syn(), k0: [u8; 16], k1: [u8; 16], oddeven in 0u8..2, secmod: u64) {
        let codec = FreeBsd { secret: Secret { keys: [SipKey::from_bytes(&k0), SipKey::from_bytes(&k1)], oddeven }, secmod };
        let now = Clock::default();
        let issued = codec.generate(&syn, now);
        let d = codec.validate(&ack_for(&syn, &issued, 9), now).expect("valid");
        let o = syn.options;
        prop_assert_eq!(d.mss, freebsd::MSS_TABLE.value(freebsd::mss_index(o.mss.unwrap_or(0)) as usize));
        prop_assert_eq!(d.wscale, o.wscale.map(|w| freebsd::WSCALE_TABLE[freebsd::wscale_index(Some(w.min(14))) as usize]));
        prop_assert_eq!(d.sack_ok, o.sack_permitted);
    }
}

proptest! {
    #![proptest_config(fixed(0x5357_414c, 512))]
    /// Any single flipped bit of ack, seq or TSecr's low 8 bits is rejected.
    #[test]
    fn v1_rejects_any_single_bit_flip(syn in arb_syn(), master: [u8; 32], t in 0u64..(1 << 40)) {
        let cfg = Config::default();
        let keys = EpochKeys::derive(&MasterSecret(master), v1::epoch_of(t, 60));
        let issued = v1::generate(&cfg, &keys.current, &syn, 1_000_000);
        let ack = ack_for(&syn, &issued, 3);
        prop_assert!(v1::validate(&cfg, &keys, &ack).is_some());
        for bit in 0..32 {
            let mut a = ack;
            a.ack ^= 1 << bit;
            prop_assert!(v1::validate(&cfg, &keys, &a).is_none(), "ack bit {}", bit);
            let mut a = ack;
            a.seq ^= 1 << bit;
            prop_assert!(v1::validate(&cfg, &keys, &a).is_none(), "seq bit {}", bit);
        }
        if let Some(ts) = ack.timestamps {
            for bit in 0..8 {
                let mut a = ack;
                a.timestamps = Some(Timestamps { tsecr: ts.tsecr ^ 1 << bit, ..ts });
                prop_assert!(v1::validate(&cfg, &keys, &a).is_none(), "tsecr bit {}", bit);
            }
            // Stripping the Timestamps option changes `ext`, so the MAC no longer matches.
            let mut a = ack;
            a.timestamps = None;
            prop_assert!(v1::validate(&cfg, &keys, &a).is_none(), "timestamps stripped");
        }
    }
}

#[test]
fn other_master_secret_rejects() {
    let syn = Syn {
        flow: Flow {
            addrs: Addrs::V4 {
                client: [192, 0, 2, 7],
                service: [198, 51, 100, 1],
            },
            client_port: 40000,
            service_port: 443,
        },
        isn: 12345,
        options: SynOptions {
            mss: Some(1460),
            wscale: Some(7),
            sack_permitted: true,
            timestamps: false,
            ece_cwr: false,
        },
    };
    let now = Clock {
        unix_secs: 1_800_000_000,
        ms: 0,
    };
    let a = SynwallV1::new(MasterSecret([1; 32]), 60, Config::default(), now.unix_secs);
    let b = SynwallV1::new(MasterSecret([2; 32]), 60, Config::default(), now.unix_secs);
    let ack = ack_for(&syn, &a.generate(&syn, now), 0);
    assert!(a.validate(&ack, now).is_some());
    assert!(b.validate(&ack, now).is_none());
}

proptest! {
    #![proptest_config(fixed(0x4449_4147, 256))]
    /// `diagnose` decides exactly like `validate` (for every scheme, on genuine, tampered,
    /// stripped and late ACKs), and names the reason synwall-v1 and Linux can tell.
    #[test]
    fn diagnose_agrees_with_validate_and_names_the_reason(
        syn in arb_syn(), master: [u8; 32], t in (1u64 << 20)..(1 << 40), period in 1u64..10_000,
        flip in 0u32..32, late in 2u64..40,
    ) {
        let cfg = Config::default();
        let v1c = SynwallV1::new(MasterSecret(master), period, cfg, t);
        let mut halves = [[0u8; 16]; 2];
        halves[0].copy_from_slice(&master[..16]);
        halves[1].copy_from_slice(&master[16..]);
        let keys = [SipKey::from_bytes(&halves[0]), SipKey::from_bytes(&halves[1])];
        let lin = Linux { secrets: Secrets(keys) };
        let fbsd = FreeBsd { secret: Secret { keys, oddeven: (master[0] & 1) }, secmod: 7 };
        let codecs: [&dyn CookieCodec; 3] = [&v1c, &lin, &fbsd];
        let at = |unix_secs| Clock { unix_secs, ms: 1_000_000 };
        let e = v1::epoch_of(t, period);
        for codec in codecs {
            let issued = codec.generate(&syn, at(t));
            let good = ack_for(&syn, &issued, 5);
            let mut flipped = good;
            flipped.ack ^= 1 << flip;
            let mut stripped = good;
            stripped.timestamps = None;
            let mut added = good;
            added.timestamps = Some(Timestamps { tsval: 1, tsecr: 0x1234_5678 });
            let mut bad_tsecr = good;
            if let Some(ts) = &mut bad_tsecr.timestamps {
                ts.tsecr ^= 1;
            }
            for (ack, when) in [(good, t), (flipped, t), (stripped, t), (added, t), (bad_tsecr, t),
                                (good, t + late * period), (good, t + late * 60)] {
                let d = codec.diagnose(&ack, at(when));
                prop_assert_eq!(d.result.ok(), codec.validate(&ack, at(when)), "{}", codec.name());
            }
        }

        // synwall-v1: the epochs tried and the reasons.
        let issued = v1c.generate(&syn, at(t));
        let good = ack_for(&syn, &issued, 5);
        let d = v1c.diagnose(&good, at(t));
        prop_assert_eq!(d.tried, KeysTried::Epochs([e, e - 1]));
        prop_assert!(d.result.is_ok());
        let later = t - t % period + late * period;
        let d = v1c.diagnose(&good, at(later));
        prop_assert_eq!(d.tried, KeysTried::Epochs([e + late, e + late - 1]));
        prop_assert_eq!(d.result, Err(Rejection::OtherEpoch { epoch: e }));
        let earlier = t - t % period - 1;
        prop_assert_eq!(v1c.diagnose(&good, at(earlier)).result, Err(Rejection::OtherEpoch { epoch: e }));
        let mut flipped = good;
        flipped.ack ^= 1 << flip;
        let d = v1c.diagnose(&flipped, at(t));
        prop_assert_eq!(d.result, Err(Rejection::MacMismatch {
            searched: Some((e - 1 - v1::DIAGNOSE_EPOCHS_BEFORE, e + v1::DIAGNOSE_EPOCHS_AFTER)),
        }));
        if syn.options.timestamps {
            let mut stripped = good;
            stripped.timestamps = None;
            prop_assert_eq!(v1c.diagnose(&stripped, at(t)).result, Err(Rejection::TimestampsMissing { epoch: e }));
            for bit in 0..8 {
                let mut a = good;
                if let Some(ts) = &mut a.timestamps {
                    ts.tsecr ^= 1 << bit;
                }
                prop_assert_eq!(v1c.diagnose(&a, at(t)).result, Err(Rejection::TsecrMismatch { epoch: e }), "tsecr bit {}", bit);
            }
        } else {
            let mut added = good;
            added.timestamps = Some(Timestamps { tsval: 1, tsecr: 0x1234_5678 });
            prop_assert_eq!(v1c.diagnose(&added, at(t)).result, Err(Rejection::TimestampsUnexpected { epoch: e }));
        }

        // Linux: a cookie older than two minute-counter steps expired, and says when it was made.
        let issued = lin.generate(&syn, at(t));
        let good = ack_for(&syn, &issued, 5);
        let count = linux::count_at(t);
        let old = t + late * 60;
        let d = lin.diagnose(&good, at(old));
        prop_assert_eq!(d.tried, KeysTried::Counters { now: linux::count_at(old), accepted: 2 });
        prop_assert_eq!(d.result, Err(Rejection::Expired { issued: count, now: linux::count_at(old) }));
    }
}
