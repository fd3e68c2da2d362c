#!/usr/bin/env python3
# SPDX-License-Identifier: MIT OR Apache-2.0
# Copyright (c) synwall contributors. Licensed under either of MIT or Apache-2.0 at your option.
"""Independent generator and checker for synwall's SYN-cookie test vectors.

This is a second, self-contained model of the algorithms in shared/SPEC.md
(synwall-v1) and shared/vectors/README.md (linux-isn, linux-ts, freebsd). It
exists to cross-check the Rust implementation: it uses only the Python 3.11
standard library (SipHash-2-4 is written out below) and never calls Rust code.

  gen_vectors.py --self-test
      SipHash-2-4 against the 64 reference vectors of the SipHash paper
      (veorq/SipHash vectors.h), splitmix64 known answers, and a
      generate-then-check round trip for every scheme.
  gen_vectors.py --scheme S --seed N --cases M --out FILE
      Write a fresh vector file in exactly the schema of the shipped file of
      scheme S, all inputs drawn from splitmix64 seeded by N (linux-ts and
      freebsd use the stream seed N+1 / N+2, as the shipped files do).
  gen_vectors.py --check FILE [--like SHIPPED]
      Recompute every output field of FILE (shipped or generated) from its
      inputs and print "N passed, M failed" (one unit = one case including its
      checks; linux-ts: one encode or decode entry). With --like, also compare
      FILE's structure (keys, nesting, JSON types) against SHIPPED.
"""
import argparse
import hashlib
import hmac
import ipaddress
import json
import os
import sys

M32, M64 = 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF
PRNG_TEXT = ("splitmix64 (Steele/Lea/Flood; gamma 0x9E3779B97F4A7C15, mix 0xBF58476D1CE4E5B9/"
             "0x94D049BB133111EB), one independent stream per file: seed, seed+1, seed+2")
STREAM_OFFSET = {"linux-isn": 0, "linux-ts": 1, "freebsd": 2, "synwall-v1": 0}

# ----------------------------------------------------------------------------- SipHash-2-4

def _rotl(x, b): return ((x << b) | (x >> (64 - b))) & M64

def _sipround(v0, v1, v2, v3):
    v0 = (v0 + v1) & M64; v1 = _rotl(v1, 13) ^ v0; v0 = _rotl(v0, 32)
    v2 = (v2 + v3) & M64; v3 = _rotl(v3, 16) ^ v2
    v0 = (v0 + v3) & M64; v3 = _rotl(v3, 21) ^ v0
    v2 = (v2 + v1) & M64; v1 = _rotl(v1, 17) ^ v2; v2 = _rotl(v2, 32)
    return v0, v1, v2, v3

def siphash24(key: bytes, msg: bytes) -> int:
    """SipHash-2-4 as a u64; k0 = LE64(key[0:8]), k1 = LE64(key[8:16])."""
    assert len(key) == 16
    k0, k1 = int.from_bytes(key[:8], "little"), int.from_bytes(key[8:], "little")
    v = (k0 ^ 0x736F6D6570736575, k1 ^ 0x646F72616E646F6D, k0 ^ 0x6C7967656E657261, k1 ^ 0x7465646279746573)
    tail = len(msg) % 8  # the last block: remaining bytes, zero padding, then len mod 256 in the top byte
    data = bytes(msg) + bytes(7 - tail) + bytes([len(msg) & 0xFF])
    for off in range(0, len(data), 8):
        m = int.from_bytes(data[off:off + 8], "little")
        v = _sipround(*_sipround(v[0], v[1], v[2], v[3] ^ m))
        v = (v[0] ^ m, v[1], v[2], v[3])
    v = (v[0], v[1], v[2] ^ 0xFF, v[3])
    for _ in range(4):
        v = _sipround(*v)
    return v[0] ^ v[1] ^ v[2] ^ v[3]


# veorq/SipHash vectors.h (vectors_sip64): key 00..0f, message 00 01 .. (len-1), output as LE bytes.
SIPHASH_REF = """
310e0edd47db6f72 fd67dc93c539f874 5a4fa9d909806c0d 2d7efbd796666785 b7877127e09427cf 8da699cd64557618
cee3fe586e46c9cb 37d1018bf50002ab 6224939a79f5f593 b0e4a90bdf82009e f3b9dd94c5bb5d7a a7ad6b22462fb3f4
fbe50e86bc8f1e75 903d84c02756ea14 eef27a8e90ca23f7 e545be4961ca29a1 db9bc2577fcc2a3f 9447be2cf5e99a69
9cd38d96f0b3c14b bd6179a71dc96dbb 98eea21af25cd6be c7673b2eb0cbf2d0 883ea3e395675393 c8ce5ccd8c030ca8
94af49f6c650adb8 eab8858ade92e1bc f315bb5bb835d817 adcf6b0763612e2f a5c91da7acaa4dde 716595876650a2a6
28ef495c53a387ad 42c341d8fa92d832 ce7cf2722f512771 e37859f94623f3a7 381205bb1ab0e012 ae97a10fd434e015
b4a31508beff4d31 81396229f0907902 4d0cf49ee5d4dcca 5c73336a76d8bf9a d0a704536ba93e0e 925958fcd6420cad
a915c29bc8067318 952b79f3bc0aa6d4 f21df2e41d4535f9 87577519048f53a9 10a56cf5dfcd9adb eb75095ccd986cd0
51a9cb9ecba312e6 96afadfc2ce666c7 72fe52975a4364ee 5a1645b276d592a1 b274cb8ebf87870a 6f9bb4203de7b381
eaecb2a30b22a87f 9924a43cc1315724 bd838d3aafbf8db7 0b1a2a3265d51aea 135079a3231ce660 932b2846e4d70666
e1915f5cb1eca46c f325965ca16d629f 575ff28e60381be5 724506eb4c328a95
""".split()

# ----------------------------------------------------------------------------- PRNG and small helpers

class SplitMix64:
    def __init__(self, seed):
        self.state = seed & M64

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & M64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        return z ^ (z >> 31)

    def below(self, n): return self.next() % n
    def u32(self): return self.next() & M32
    def u16(self): return self.next() & 0xFFFF
    def coin(self): return bool(self.next() & 1)
    def choice(self, seq): return seq[self.below(len(seq))]

    def raw(self, n):
        return b"".join(self.next().to_bytes(8, "little") for _ in range((n + 7) // 8))[:n]

def pick(rng, i, options):
    """options[i] for the first len(options) cases (guaranteed coverage), then a random one."""
    return options[i] if i < len(options) else rng.choice(options)

def le32(x): return (x & M32).to_bytes(4, "little")
def be16(x): return x.to_bytes(2, "big")
def be32(x): return (x & M32).to_bytes(4, "big")
def addr_bytes(text): return ipaddress.ip_address(text).packed

def rand_addr(rng, family):
    """Random address text: plain random plus a few realistic/odd shapes."""
    if family == 4:
        shape = rng.below(4)
        pre = {0: b"", 1: b"\x0a", 2: b"\xc0\xa8", 3: b"\xcb\x00\x71"}[shape]
        return str(ipaddress.IPv4Address(pre + rng.raw(4 - len(pre))))
    shape = rng.below(6)
    if shape == 1:
        raw = b"\x20\x01\x0d\xb8" + rng.raw(4) + bytes(6) + rng.raw(2)
    elif shape == 2:
        raw = bytes(15) + rng.raw(1)
    elif shape == 3:
        raw = b"\xfe\x80" + bytes(6) + rng.raw(8)
    elif shape == 4:
        raw = bytes(10) + b"\xff\xff" + rng.raw(4)
    else:
        raw = rng.raw(16)
    return str(ipaddress.IPv6Address(raw))

def same(a, b):
    """Strict JSON equality: bool != int, dicts compared key by key."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b

class Tally:
    def __init__(self):
        self.passed = self.failed = self.fields = 0
        self.errors = []

    def unit(self, label, pairs):
        """pairs: list of (field name, value in file, recomputed value)."""
        bad = [(n, f, m) for n, f, m in pairs if not same(f, m)]
        self.fields += len(pairs)
        if bad:
            self.failed += 1
            self.errors += [f"{label}: {n}: file={f!r} model={m!r}" for n, f, m in bad]
        else:
            self.passed += 1

# ----------------------------------------------------------------------------- synwall-v1 (SPEC.md 2-6)

SW_TABLES = {4: [536, 1200, 1360, 1400, 1440, 1452, 1460, 8960],
             6: [1220, 1280, 1360, 1420, 1432, 1440, 8940, 65476]}

def sw_salt(master, epoch):
    """K_e = HMAC-SHA256(master, "synwall/v1 salt" || BE64(e))[0..16]."""
    return hmac.new(master, b"synwall/v1 salt" + epoch.to_bytes(8, "big"), hashlib.sha256).digest()[:16]

def sw_mac(salt, c, isn, opt, ext):
    msg = addr_bytes(c["client"]) + addr_bytes(c["service"]) + be16(c["client_port"]) + \
        be16(c["service_port"]) + be32(isn) + bytes([opt, ext])
    return siphash24(salt, msg)

def sw_expect(c, tables):
    syn, table = c["syn"], tables[c["family"]]
    s = 1 if syn["sack"] else 0
    w = 15 if syn["wscale"] is None else min(syn["wscale"], 14)
    m = 0 if syn["mss"] is None else max([i for i, t in enumerate(table) if t <= syn["mss"]], default=0)
    t = 1 if syn["ts"] else 0
    e = 1 if (t and syn["ece_cwr"]) else 0
    opt, ext = s << 7 | w << 3 | m, e << 1 | t
    salt = sw_salt(bytes.fromhex(c["master_hex"]), c["unix_time"] // c["period"])
    mac = sw_mac(salt, c, c["client_isn"], opt, ext)
    tsval = ((c["clock_ms"] & 0xFFFFFF00) | e << 7 | ((mac >> 24) & 0x7F)) if t else None
    return {"salt_hex": salt.hex(), "opt": opt, "ext": ext, "mac_hex": f"{mac:016x}",
            "cookie": opt << 24 | (mac & 0xFFFFFF), "tsval": tsval}

def sw_validate(c, tables, unix_time, ack, seq, tsecr):
    """SPEC 6: decoded bpf_tcp_req_attrs fields, or None when the ACK is rejected."""
    cookie, isn = (ack - 1) & M32, (seq - 1) & M32
    opt, t = cookie >> 24, 1 if tsecr is not None else 0
    e = (tsecr >> 7) & 1 if t else 0
    master, epoch = bytes.fromhex(c["master_hex"]), unix_time // c["period"]
    for ep in (epoch, epoch - 1):
        mac = sw_mac(sw_salt(master, ep), c, isn, opt, e << 1 | t)
        if (mac & 0xFFFFFF) == (cookie & 0xFFFFFF) and (not t or ((mac >> 24) & 0x7F) == (tsecr & 0x7F)):
            w = (opt >> 3) & 0xF
            return {"mss": tables[c["family"]][opt & 7], "wscale_ok": w != 15, "snd_wscale": 0 if w == 15 else w,
                    "sack_ok": bool(opt >> 7), "tstamp_ok": bool(t), "ecn_ok": bool(e)}
    return None

def gen_synwall(seed, n):
    rng, cases = SplitMix64(seed), []
    for i in range(n):
        fam = pick(rng, i, [4, 6]); table = SW_TABLES[fam]
        period = pick(rng, i, [30, 60, 3600, 60])
        unix_time = 1_600_000_000 + rng.below(500_000_000)
        unix_time += pick(rng, i, [0, 0, 0, -(unix_time % period), period - 1 - unix_time % period])
        mss_kind = pick(rng, i, ["none", "below", "above", "edge", "edge", "edge", "random"])
        mss = {"none": None, "below": rng.choice([0, 1, 200, table[0] - 1]),
               "above": rng.choice([m for m in (table[-1] + 1, 9000, 65495, 65535) if m > table[-1]]),
               "edge": rng.choice(table) + rng.choice([-1, 0, 0, 1]), "random": rng.u16()}[mss_kind]
        ws_kind = pick(rng, i, ["none", "big", "small", "small", "small"])
        wscale = {"none": None, "big": rng.choice([15, 16, 100, 255]), "small": rng.choice([0, 14, rng.below(15)])}[ws_kind]
        ts, ece = pick(rng, i, [(False, False), (True, True), (False, True), (True, False)])
        c = {"master_hex": rng.raw(32).hex(), "period": period, "unix_time": unix_time, "family": fam,
             "client": rand_addr(rng, fam), "service": rand_addr(rng, fam), "client_port": rng.u16(),
             "service_port": rng.choice([80, 443, 8080, rng.u16()]),
             "client_isn": pick(rng, i, [rng.u32(), 0, M32, rng.u32(), rng.u32()]),
             "syn": {"mss": mss, "wscale": wscale, "sack": rng.coin(), "ts": ts, "ece_cwr": ece},
             "clock_ms": pick(rng, i, [rng.u32(), M32, 0, rng.u32()])}
        c["expect"] = x = sw_expect(c, SW_TABLES)
        ack, seq, tsecr = (x["cookie"] + 1) & M32, (c["client_isn"] + 1) & M32, x["tsval"]
        probes = [(unix_time, ack, seq, tsecr), (unix_time + period, ack, seq, tsecr),
                  (unix_time + 2 * period, ack, seq, tsecr), (unix_time - period, ack, seq, tsecr),
                  (unix_time, ack ^ (1 << rng.below(32)), seq, tsecr),
                  (unix_time, ack, seq ^ (1 << rng.below(32)), tsecr)]
        if ts:
            probes += [(unix_time, ack, seq, tsecr ^ (1 << rng.below(8))), (unix_time, ack, seq, None)]
        c["checks"] = [{"unix_time": t, "ack": a, "seq": s, "tsecr": e,
                        "decoded": sw_validate(c, SW_TABLES, t, a, s, e)} for t, a, s, e in probes]
        cases.append(c)
    return {"scheme": "synwall-v1", "spec": "shared/SPEC.md", "seed": seed,
            "mss_table_v4": SW_TABLES[4], "mss_table_v6": SW_TABLES[6], "cases": cases}

def check_synwall(doc, tally):
    tables = {4: doc["mss_table_v4"], 6: doc["mss_table_v6"]}  # configurable (SPEC 3): use the file's
    for i, c in enumerate(doc["cases"]):
        x = sw_expect(c, tables)
        pairs = [(f"expect.{k}", v, x[k]) for k, v in c["expect"].items()]
        pairs.append(("expect keys", sorted(c["expect"]), sorted(x)))
        pairs += [(f"checks[{j}].decoded", k["decoded"], sw_validate(c, tables, k["unix_time"], k["ack"], k["seq"], k["tsecr"]))
                  for j, k in enumerate(c["checks"])]
        tally.unit(f"case {i}", pairs)

# ----------------------------------------------------------------------------- linux-isn (README)

LINUX_MSS = {4: [536, 1300, 1440, 1460], 6: [1220, 1420, 1440, 8940]}
COUNT_EDGES = [0, 1, 2, 0xFF, 0x100, 0xFFFFFFFE, 0xFFFFFFFF]

def linux_h(c, which, count):
    """Low 32 bits of cookie_hash(saddr, daddr, sport, dport, count, which)."""
    sa, da = bytes.fromhex(c["saddr_hex"]), bytes.fromhex(c["daddr_hex"])
    if c["family"] == 4:   # siphash_4u32(saddr, daddr, sport << 16 | dport, count) on little-endian
        msg = sa + da + be16(c["dport"]) + be16(c["sport"]) + le32(count)
    else:                  # struct {saddr; daddr; u32 count; __be16 sport; __be16 dport}
        msg = sa + da + le32(count) + be16(c["sport"]) + be16(c["dport"])
    return siphash24(bytes.fromhex(c[f"secret{which}_hex"]), msg) & M32

def linux_generate(c):
    table = LINUX_MSS[c["family"]]
    idx = max([i for i in range(1, 4) if c["mss_in"] >= table[i]], default=0)
    h0, h1 = linux_h(c, 0, 0), linux_h(c, 1, c["count"])
    cookie = (h0 + c["client_isn"] + (c["count"] << 24) + ((h1 + idx) & 0xFFFFFF)) & M32
    return {"cookie": cookie, "mss_encoded": table[idx], "mss_index": idx, "h0": h0, "h1": h1}

def linux_check(c, count_now, cookie, client_isn):
    """__cookie_vX_check with tcp_cookie_time() = count_now; cookie/client_isn already minus 1."""
    v = (cookie - (linux_h(c, 0, 0) + client_isn)) & M32
    diff = (count_now - (v >> 24)) & 0xFF
    if diff >= 2:
        return 0
    data = (v - linux_h(c, 1, (count_now - diff) & M32)) & 0xFFFFFF
    return LINUX_MSS[c["family"]][data] if data < 4 else 0

def linux_check_inputs(c, kind, flip_bit=None):
    """(count_now, cookie, client_isn) that a check of this kind feeds to __cookie_vX_check."""
    cnt, ck, isn = c["count"], c["cookie"], c["client_isn"]
    return {"same": (cnt, ck, isn), "plus1": ((cnt + 1) & M32, ck, isn), "plus2": ((cnt + 2) & M32, ck, isn),
            "minus1": ((cnt - 1) & M32, ck, isn), "bitflip": (cnt, ck ^ (1 << (flip_bit or 0)), isn),
            "isn_mismatch": (cnt, ck, (isn + 1) & M32)}[kind]

def meta(scheme, seed, out):
    return {"scheme": scheme, "prng": PRNG_TEXT, "seed": seed,
            "platform": "independent Python model (tools/vectors/gen_vectors.py), not the upstream C",
            "stream_seed": seed + STREAM_OFFSET[scheme], "file": os.path.basename(out), "see": "shared/vectors/README.md"}

def gen_linux_isn(seed, n, out):
    rng, cases = SplitMix64(seed + STREAM_OFFSET["linux-isn"]), []
    for i in range(n):
        fam = pick(rng, i, [4, 6])
        table = LINUX_MSS[fam]
        s0, s1 = rng.raw(16), rng.raw(16)
        if i == 0:
            s0, s1 = bytes(range(16)), bytes(range(16, 32))
        elif i == 1:
            s0 = s1 = bytes(16)
        sa, da = rand_addr(rng, fam), rand_addr(rng, fam)
        cls = pick(rng, i, ["below_min", "above_max", "table_edge", "random", "table_edge", "random"])
        mss = {"below_min": rng.choice([0, 1, 88, table[0] // 2, table[0] - 1]),
               "above_max": rng.choice([table[3] + 1, 9000, 16384, 65535]),
               "table_edge": rng.choice(table) + rng.choice([-1, 0, 1]), "random": rng.u16()}[cls]
        count = pick(rng, i, COUNT_EDGES + ["r"] * 14)
        c = {"id": i, "family": fam, "secret0_hex": s0.hex(), "secret1_hex": s1.hex(), "saddr": sa, "daddr": da,
             "saddr_hex": addr_bytes(sa).hex(), "daddr_hex": addr_bytes(da).hex(),
             "sport": pick(rng, i, [rng.u16(), 0, 65535, rng.u16()]), "dport": pick(rng, i, [rng.u16(), 65535, 0, 1]),
             "client_isn": pick(rng, i, [rng.u32(), M32, 0, rng.u32()]), "mss_in": mss, "mss_in_class": cls,
             "count": rng.u32() if count == "r" else count}
        c.update(linux_generate(c))
        c["checks"] = []
        for kind in ("same", "plus1", "plus2", "minus1", "bitflip", "isn_mismatch"):
            bit = pick(rng, i, [0, 1, 24, 31] + list(range(32))) if kind == "bitflip" else None
            cn, ck, isn = linux_check_inputs(c, kind, bit)
            chk = {"kind": kind, "count_now": cn, "cookie": ck, "client_isn": isn, "mss": linux_check(c, cn, ck, isn)}
            if bit is not None:
                chk["flip_bit"] = bit
            c["checks"].append(chk)
        cases.append(c)
    return {"meta": meta("linux-isn", seed, out), "cases": cases}

def check_linux_isn(doc, tally):
    for c in doc["cases"]:
        g = linux_generate(c)
        pairs = [(k, c[k], g[k]) for k in g]
        pairs += [(f"{a}_hex", c[f"{a}_hex"], addr_bytes(c[a]).hex()) for a in ("saddr", "daddr")]
        for k in c["checks"]:
            cn, ck, isn = linux_check_inputs(c, k["kind"], k.get("flip_bit"))
            pairs += [(f"{k['kind']}.inputs", [k["count_now"], k["cookie"], k["client_isn"]], [cn, ck, isn]),
                      (f"{k['kind']}.mss", k["mss"], linux_check(c, cn, ck, isn))]
        tally.unit(f"case {c['id']}", pairs)

# ----------------------------------------------------------------------------- linux-ts (README)

def ts_encode(ts_now, wscale_ok, snd_wscale, sack_ok, ecn_ok):
    options = (snd_wscale if wscale_ok else 0xF) | (0x10 if sack_ok else 0) | (0x20 if ecn_ok else 0)
    ts = (ts_now & ~63 & M64) | options
    if ts > ts_now:
        ts -= 64
    ts_ns = (ts * 1_000_000) & M64
    tsval = (ts_ns // 1_000_000) & M32
    return {"tsval": tsval, "ts_ns": ts_ns, "options": tsval & 63}

def ts_decode(tsecr, saw_tstamp, sys_ts=1, sys_sack=1, sys_ws=1):
    r = {"ok": True, "wscale_ok": False, "snd_wscale": 0, "sack_ok": 0, "ecn_ok": bool(saw_tstamp and tsecr & 0x20)}
    if not saw_tstamp:
        return r
    if not sys_ts:
        return dict(r, ok=False)
    r["sack_ok"] = 1 if tsecr & 0x10 else 0
    if r["sack_ok"] and not sys_sack:
        return dict(r, ok=False)
    if tsecr & 0xF == 0xF:
        return r
    r.update(wscale_ok=True, snd_wscale=tsecr & 0xF, ok=sys_ws != 0)
    return r

def gen_linux_ts(seed, n, out):
    rng, encode, decode = SplitMix64(seed + STREAM_OFFSET["linux-ts"]), [], []
    for i in range(n):
        ts_now = pick(rng, i, [64, 65, 127, 128, M32, 1 << 32, (1 << 32) + 63, (1 << 40) + 5] + ["r"] * 12)
        big = rng.below(4) == 0  # some clocks past 2^32 ms (uptime over 49.7 days)
        e = {"id": i, "ts_now": 64 + rng.below((1 << (36 if big else 32)) - 64) if ts_now == "r" else ts_now,
             "wscale_ok": rng.coin(), "snd_wscale": pick(rng, i, [0, 14, 7] + list(range(15))),
             "sack_ok": rng.coin(), "ecn_ok": rng.coin()}
        e.update(ts_encode(e["ts_now"], e["wscale_ok"], e["snd_wscale"], e["sack_ok"], e["ecn_ok"]))
        e["decode_of_tsval"] = ts_decode(e["tsval"], True)
        encode.append(e)
    for i in range(n):
        mode = pick(rng, i, ["nots", "sys_ts", "sys_sack", "sys_ws"] + ["normal"] * 6)
        tsecr = rng.u32()
        if i % 3 == 0:
            tsecr |= 0xF  # no window scaling encoded
        d = {"id": i, "tsecr": tsecr, "saw_tstamp": mode != "nots", "sysctl_tcp_timestamps": int(mode != "sys_ts"),
             "sysctl_tcp_sack": int(mode != "sys_sack"), "sysctl_tcp_window_scaling": int(mode != "sys_ws")}
        d.update(ts_decode(tsecr, d["saw_tstamp"], d["sysctl_tcp_timestamps"], d["sysctl_tcp_sack"],
                           d["sysctl_tcp_window_scaling"]))
        decode.append(d)
    return {"meta": meta("linux-ts", seed, out), "encode": encode, "decode": decode}

def check_linux_ts(doc, tally):
    for e in doc["encode"]:
        g = ts_encode(e["ts_now"], e["wscale_ok"], e["snd_wscale"], e["sack_ok"], e["ecn_ok"])
        g["decode_of_tsval"] = ts_decode(e["tsval"], True)
        rt = [("roundtrip.sack", e["decode_of_tsval"]["sack_ok"], int(e["sack_ok"])),
              ("roundtrip.ecn", e["decode_of_tsval"]["ecn_ok"], e["ecn_ok"]),
              ("roundtrip.wscale", e["decode_of_tsval"]["wscale_ok"], e["wscale_ok"])]
        tally.unit(f"encode {e['id']}", [(k, e[k], v) for k, v in g.items()] + rt)
    for d in doc["decode"]:
        g = ts_decode(d["tsecr"], d["saw_tstamp"], d["sysctl_tcp_timestamps"], d["sysctl_tcp_sack"],
                      d["sysctl_tcp_window_scaling"])
        tally.unit(f"decode {d['id']}", [(k, d[k], v) for k, v in g.items()])

# ----------------------------------------------------------------------------- freebsd (README)

FB_MSS = [216, 536, 1200, 1360, 1400, 1440, 1452, 1460]
FB_WS = [0, 0, 1, 2, 4, 6, 7, 8]
FB_NEG_KINDS = ["iss_bitflip", "other_secret", "irs_mismatch", "secmod_mismatch", "iss_bitflip", "other_secret"]

def fb_flags(c):
    mss_idx = max([i for i, t in enumerate(FB_MSS) if t <= c["peer_mss"]], default=0)
    ws = c["wscale_requested"]
    ws_idx = 0 if ws is None else max(i for i in range(1, 8) if FB_WS[i] <= ws)
    return (c["oddeven"] & 1) | (1 if c["sack_ok"] else 0) << 1 | ws_idx << 2 | mss_idx << 5

def fb_mac(c, key_hex, irs, flags, secmod):
    msg = bytes.fromhex(c["faddr_hex"]) + bytes.fromhex(c["laddr_hex"]) + be16(c["fport"]) + be16(c["lport"]) + \
        le32(irs) + bytes([flags]) + (secmod & M64).to_bytes(8, "little")
    r = siphash24(bytes.fromhex(key_hex), msg)
    return msg, r, (r & M32) ^ (r >> 32)

def fb_generate(c):
    flags = fb_flags(c)
    msg, r, mac32 = fb_mac(c, c[f"key{c['oddeven'] & 1}_hex"], c["irs"], flags, c["secmod"])
    return {"flags_byte": flags, "flags": {"odd_even": flags & 1, "sack_ok": flags >> 1 & 1,
                                           "wscale_idx": flags >> 2 & 7, "mss_idx": flags >> 5},
            "mac_input_hex": msg.hex(), "mac_hex": f"{r:016x}", "mac_le_bytes_hex": r.to_bytes(8, "little").hex(),
            "mac32": mac32, "iss": (mac32 & 0xFFFFFF00) | (flags ^ (mac32 >> 24))}

def fb_lookup(c):
    ack = c["lookup_iss"]
    flags = ((ack & 0xFF) ^ (ack >> 24)) & 0xFF
    _, _, mac32 = fb_mac(c, c[f"lookup_key{flags & 1}_hex"], c["lookup_irs"], flags, c["lookup_secmod"])
    valid = (ack & ~0xFF & M32) == (mac32 & ~0xFF & M32)
    ws_idx = flags >> 2 & 7
    decoded = {"mss": FB_MSS[flags >> 5], "wscale": FB_WS[ws_idx] if ws_idx else None, "sack_ok": bool(flags & 2)}
    return {"decoded": decoded if valid else None, "valid": valid}

def fb_set_lookup(c, iss, irs, k0, k1, secmod):
    c.update({"lookup_iss": iss, "lookup_irs": irs, "lookup_key0_hex": k0, "lookup_key1_hex": k1,
              "lookup_secmod": secmod, "lookup_secmod_hex": f"{secmod:016x}"})
    c.update(fb_lookup(c))

def gen_freebsd(seed, n, out):
    rng, cases = SplitMix64(seed + STREAM_OFFSET["freebsd"]), []
    for i in range(n):
        fam = pick(rng, i, [6, 4])
        k0, k1 = (bytes(range(16)), bytes(range(16, 32))) if i == 0 else (rng.raw(16), rng.raw(16))
        fa, la = rand_addr(rng, fam), rand_addr(rng, fam)
        cls = pick(rng, i, ["below_min_or_none", "above_max", "table_edge", "random", "table_edge", "random"])
        mss = {"below_min_or_none": rng.choice([0, 1, 100, 215]), "above_max": rng.choice([1461, 1500, 8960, 65535]),
               "table_edge": rng.choice(FB_MSS) + rng.choice([-1, 0, 1]), "random": rng.u16()}[cls]
        sm_kind = pick(rng, i, ["ptr", "edge", "rand", "ptr", "ptr", "ptr", "ptr"])
        secmod = {"ptr": 0xFFFFF80000000000 | (rng.next() & 0x7FFFFFFFC0), "rand": rng.next(),
                  "edge": rng.choice([0, 1, M32, M64])}[sm_kind]
        c = {"family": fam, "key0_hex": k0.hex(), "key1_hex": k1.hex(), "oddeven": pick(rng, i, [1, 0]),
             "faddr": fa, "laddr": la, "faddr_hex": addr_bytes(fa).hex(), "laddr_hex": addr_bytes(la).hex(),
             "fport": rng.choice([80, 443, 255, rng.u16()]), "lport": rng.u16(), "irs": pick(rng, i, [rng.u32(), M32, 0, rng.u32()]),
             "peer_mss": mss, "wscale_requested": pick(rng, i, [None, 0, 14] + [None] * 5 + list(range(15))),
             "sack_ok": rng.coin(), "secmod": secmod, "secmod_hex": f"{secmod:016x}",
             "id": i, "kind": "positive", "peer_mss_class": cls}
        c.update(fb_generate(c))
        fb_set_lookup(c, c["iss"], c["irs"], c["key0_hex"], c["key1_hex"], c["secmod"])
        cases.append(c)
    gen_keys = ["family", "key0_hex", "key1_hex", "oddeven", "faddr", "laddr", "faddr_hex", "laddr_hex", "fport",
                "lport", "irs", "peer_mss", "wscale_requested", "sack_ok", "secmod", "secmod_hex", "flags_byte",
                "mac_hex", "mac32", "iss"]
    for j in range(max(4, n * 3 // 10)):
        # alternate rounds of the six kinds between bases without and with a window-scale option
        pool = [b for b in cases if (b["wscale_requested"] is None) == (j // 6 % 2 == 0)] or cases
        base, kind = rng.choice(pool), FB_NEG_KINDS[j % len(FB_NEG_KINDS)]
        c = {k: base[k] for k in gen_keys}
        c.update({"id": n + j, "kind": kind, "negative_of": base["id"]})
        iss, irs, k0, k1, sm = base["iss"], base["irs"], base["key0_hex"], base["key1_hex"], base["secmod"]
        if kind == "iss_bitflip":
            c["flip_bit"] = rng.below(32)
            iss ^= 1 << c["flip_bit"]
        elif kind == "other_secret":
            fresh = rng.raw(16).hex()
            k0, k1 = (k0, fresh) if base["oddeven"] & 1 else (fresh, k1)
        elif kind == "irs_mismatch":
            irs = (irs + 1) & M32
        else:
            sm = (sm + 64) & M64
        fb_set_lookup(c, iss, irs, k0, k1, sm)
        cases.append(c)
    return {"meta": meta("freebsd", seed, out), "cases": cases}

def check_freebsd(doc, tally):
    by_id = {c["id"]: c for c in doc["cases"]}
    for c in doc["cases"]:
        g = fb_generate(c)
        g.update(fb_lookup(c))
        pairs = [(k, c[k], v) for k, v in g.items() if k in c]
        pairs += [(f"{a}_hex", c[f"{a}_hex"], addr_bytes(c[a]).hex()) for a in ("faddr", "laddr")]
        pairs += [(f"{s}_hex", c[f"{s}_hex"], f"{c[s]:016x}") for s in ("secmod", "lookup_secmod")]
        if c["kind"] == "positive":
            exp = [c["iss"], c["irs"], c["key0_hex"], c["key1_hex"], c["secmod"]]
            pairs.append(("valid(positive)", c["valid"], True))
        else:  # negative: generation fields copied from the base case, one lookup input changed
            b = by_id[c["negative_of"]]
            pairs += [(f"base.{k}", c[k], b[k]) for k in ("irs", "iss", "secmod", "key0_hex", "key1_hex", "oddeven")]
            exp = [b["iss"], b["irs"], b["key0_hex"], b["key1_hex"], b["secmod"]]
            if c["kind"] == "iss_bitflip":
                exp[0] ^= 1 << c["flip_bit"]
            elif c["kind"] == "irs_mismatch":
                exp[1] = (exp[1] + 1) & M32
            elif c["kind"] == "secmod_mismatch":
                exp[4] = (exp[4] + 64) & M64
            else:  # other_secret: the key in slot oddeven is a fresh one
                slot = 2 + (b["oddeven"] & 1)
                pairs.append(("other_secret.key_changed", c[f"lookup_key{slot - 2}_hex"] != exp[slot], True))
                exp[slot] = c[f"lookup_key{slot - 2}_hex"]
        got = [c["lookup_iss"], c["lookup_irs"], c["lookup_key0_hex"], c["lookup_key1_hex"], c["lookup_secmod"]]
        pairs.append(("lookup_inputs", got, exp))
        tally.unit(f"case {c['id']} ({c['kind']})", pairs)

# ----------------------------------------------------------------------------- structure comparison, CLI

def shape(node, path, out):
    """Collect, per record group (path, plus the value of 'kind'), the keys always present and the JSON types seen."""
    if isinstance(node, list):
        for v in node:
            shape(v, path + "[]", out)
    elif isinstance(node, dict):
        grp = path + (f"<{node['kind']}>" if isinstance(node.get("kind"), str) else "")
        ent = out.setdefault(grp, {"keys": set(node), "types": {}})
        ent["keys"] &= set(node)
        for k, v in node.items():
            ent["types"].setdefault(k, set()).add({dict: "object", list: "array", str: "string", bool: "bool",
                                                   int: "int", float: "float", type(None): "null"}[type(v)])
            shape(v, f"{grp}.{k}", out)
    return out

def compare_shape(ref, got):
    a, b, errs = shape(ref, "$", {}), shape(got, "$", {}), []
    for grp in sorted(set(a) | set(b)):
        if grp not in b:
            errs.append(f"{grp}: present in reference, never produced")
        elif grp not in a:
            errs.append(f"{grp}: not in reference")
        else:
            errs += [f"{grp}: key {k!r} missing" for k in sorted(a[grp]["keys"] - b[grp]["keys"])]
            for k in sorted(set(a[grp]["types"]) | set(b[grp]["types"])):
                ta, tb = a[grp]["types"].get(k, set()), b[grp]["types"].get(k, set())
                if ta != tb:
                    errs.append(f"{grp}.{k}: types {sorted(tb)} vs reference {sorted(ta)}")
    return errs

GENERATORS = {"synwall-v1": lambda s, n, o: gen_synwall(s, n), "linux-isn": gen_linux_isn,
              "linux-ts": gen_linux_ts, "freebsd": gen_freebsd}
CHECKERS = {"synwall-v1": check_synwall, "linux-isn": check_linux_isn, "linux-ts": check_linux_ts,
            "freebsd": check_freebsd}

def check_doc(doc):
    scheme, tally = doc.get("scheme") or doc["meta"]["scheme"], Tally()
    CHECKERS[scheme](doc, tally)
    return scheme, tally

def self_test():
    ok = True
    key, n_ok = bytes(range(16)), 0
    for n, ref in enumerate(SIPHASH_REF):
        n_ok += siphash24(key, bytes(range(n))).to_bytes(8, "little").hex() == ref
    print(f"siphash-2-4 reference vectors: {n_ok}/64 passed")
    ok &= n_ok == 64 == len(SIPHASH_REF)
    rng = SplitMix64(0)
    sm = [rng.next() for _ in range(3)] == [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F]
    print(f"splitmix64 seed 0 known answers: {'ok' if sm else 'FAILED'}")
    ok &= sm
    for scheme, gen in GENERATORS.items():
        for seed in (0, 7):
            _, t = check_doc(json.loads(json.dumps(gen(seed, 30, "selftest.json"))))
            print(f"round trip {scheme} seed {seed}: {t.passed} passed, {t.failed} failed")
            ok &= t.failed == 0 and t.passed > 0
    print("self-test", "PASSED" if ok else "FAILED")
    return 0 if ok else 1

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scheme", choices=sorted(GENERATORS))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cases", type=int, default=50)
    ap.add_argument("--out")
    ap.add_argument("--check", metavar="FILE")
    ap.add_argument("--like", metavar="SHIPPED", help="with --check: compare structure against this file")
    ap.add_argument("--self-test", action="store_true")
    args = ap.parse_args()
    if args.self_test:
        return self_test()
    if args.check:
        with open(args.check) as f:
            doc = json.load(f)
        scheme, t = check_doc(doc)
        for e in t.errors[:20]:
            print("MISMATCH", e)
        print(f"{args.check} [{scheme}]: {t.passed} passed, {t.failed} failed ({t.fields} fields recomputed)")
        bad = t.failed > 0
        if args.like:
            with open(args.like) as f:
                errs = compare_shape(json.load(f), doc)
            for e in errs:
                print("STRUCTURE", e)
            print(f"structure vs {args.like}: {'identical keys and types' if not errs else f'{len(errs)} differences'}")
            bad |= bool(errs)
        return 1 if bad else 0
    if not (args.scheme and args.out) or args.cases < 1:
        ap.error("need --scheme and --out (and --cases >= 1), or --check FILE, or --self-test")
    doc = GENERATORS[args.scheme](args.seed, args.cases, args.out)
    with open(args.out, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print(f"wrote {args.out}: scheme {args.scheme}, seed {args.seed}, {args.cases} cases")
    return 0

if __name__ == "__main__":
    sys.exit(main())
