//! Criterion benchmarks: generate and validate per scheme, IPv4 and IPv6.
//!
//! `cargo bench -p synwall-cookie --bench cookie`. Inputs rotate over a small set of distinct SYNs
//! so the measurement is not one cached input.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use synwall_cookie::freebsd::{FreeBsd, Secret};
use synwall_cookie::linux::{Linux, Secrets};
use synwall_cookie::synwall_v1::{self as v1, Config, EpochKeys, MasterSecret, SynwallV1};
use synwall_cookie::{Ack, Addrs, Clock, CookieCodec, Flow, SipKey, Syn, SynOptions, Timestamps};

const N: usize = 64;
const NOW: Clock = Clock {
    unix_secs: 1_800_000_000,
    ms: 123_456_789,
};

fn syns(v6: bool) -> Vec<Syn> {
    (0..N as u32)
        .map(|i| {
            let b = i.to_be_bytes();
            let addrs = if v6 {
                let mut c = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
                c[12..].copy_from_slice(&b);
                let mut s = c;
                s[15] ^= 0xff;
                Addrs::V6 {
                    client: c,
                    service: s,
                }
            } else {
                Addrs::V4 {
                    client: [10, b[1], b[2], b[3]],
                    service: [192, 0, 2, 1],
                }
            };
            Syn {
                flow: Flow {
                    addrs,
                    client_port: 30000 + i as u16,
                    service_port: 443,
                },
                isn: i.wrapping_mul(0x9e37_79b9),
                options: SynOptions {
                    mss: Some(1460),
                    wscale: Some(7),
                    sack_permitted: true,
                    timestamps: true,
                    ece_cwr: false,
                },
            }
        })
        .collect()
}

fn acks(codec: &dyn CookieCodec, syns: &[Syn]) -> Vec<Ack> {
    syns.iter()
        .map(|s| {
            let i = codec.generate(s, NOW);
            Ack {
                flow: s.flow,
                seq: s.isn.wrapping_add(1),
                ack: i.isn.wrapping_add(1),
                timestamps: i.tsval.map(|tsecr| Timestamps { tsval: 1, tsecr }),
            }
        })
        .collect()
}

fn codecs() -> Vec<Box<dyn CookieCodec>> {
    let k = |b: u8| SipKey::from_bytes(&[b; 16]);
    vec![
        Box::new(SynwallV1::new(
            MasterSecret([7; 32]),
            60,
            Config::default(),
            NOW.unix_secs,
        )),
        Box::new(Linux {
            secrets: Secrets([k(1), k(2)]),
        }),
        Box::new(FreeBsd {
            secret: Secret {
                keys: [k(3), k(4)],
                oddeven: 0,
            },
            secmod: 0xffff_f800_1234_5678,
        }),
    ]
}

fn bench(c: &mut Criterion) {
    for v6 in [false, true] {
        let fam = if v6 { "ipv6" } else { "ipv4" };
        let syns = syns(v6);

        // The hot path as the engine calls it: salts already derived, no trait object.
        let cfg = Config::default();
        let keys = EpochKeys::derive(&MasterSecret([7; 32]), v1::epoch_of(NOW.unix_secs, 60));
        let mut g = c.benchmark_group(format!("synwall-v1-direct/{fam}"));
        g.throughput(Throughput::Elements(1));
        let mut i = 0;
        g.bench_function("generate", |b| {
            b.iter(|| {
                i = (i + 1) % N;
                black_box(v1::generate(
                    &cfg,
                    &keys.current,
                    black_box(&syns[i]),
                    NOW.ms,
                ))
            })
        });
        let codec = SynwallV1::new(MasterSecret([7; 32]), 60, cfg, NOW.unix_secs);
        let v1_acks = acks(&codec, &syns);
        g.bench_function("validate", |b| {
            b.iter(|| {
                i = (i + 1) % N;
                black_box(v1::validate(&cfg, &keys, black_box(&v1_acks[i])))
            })
        });
        g.finish();

        // Batched: 64 SYNs per call, MAC'd 8 at a time (SIMD where the CPU has it).
        let mut g = c.benchmark_group(format!("synwall-v1-batch/{fam}"));
        g.throughput(Throughput::Elements(N as u64));
        let mut out = vec![
            synwall_cookie::Issued {
                isn: 0,
                tsval: None,
                ecn: false
            };
            N
        ];
        g.bench_function("generate", |b| {
            b.iter(|| {
                v1::generate_batch(&cfg, &keys.current, black_box(&syns), NOW.ms, &mut out);
                black_box(&out);
            })
        });
        let mut dec = vec![None; N];
        g.bench_function("validate", |b| {
            b.iter(|| {
                v1::validate_batch(&cfg, &keys, black_box(&v1_acks), &mut dec);
                black_box(&dec);
            })
        });
        g.finish();

        let mut g = c.benchmark_group(format!("codec/{fam}"));
        g.throughput(Throughput::Elements(1));
        for codec in codecs() {
            let acks = acks(codec.as_ref(), &syns);
            g.bench_function(BenchmarkId::new("generate", codec.name()), |b| {
                b.iter(|| {
                    i = (i + 1) % N;
                    black_box(codec.generate(black_box(&syns[i]), NOW))
                })
            });
            g.bench_function(BenchmarkId::new("validate", codec.name()), |b| {
                b.iter(|| {
                    i = (i + 1) % N;
                    black_box(codec.validate(black_box(&acks[i]), NOW))
                })
            });
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
