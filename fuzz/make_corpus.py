#!/usr/bin/env python3
# SPDX-License-Identifier: MIT OR Apache-2.0
"""Seed the `engine` fuzz target's corpus with every frame of the committed fixture captures
(real Linux handshakes and the p0f SYN layouts). Usage: python3 fuzz/make_corpus.py"""
import hashlib
import pathlib
import struct

root = pathlib.Path(__file__).resolve().parent.parent
out = root / "fuzz" / "corpus" / "engine"
out.mkdir(parents=True, exist_ok=True)
n = 0
for pcap in sorted((root / "fixtures" / "pcap").rglob("*.pcap")):
    data = pcap.read_bytes()
    magic = struct.unpack("<I", data[:4])[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    off = 24
    while off + 16 <= len(data):
        _, _, incl, _ = struct.unpack(endian + "IIII", data[off:off + 16])
        frame = data[off + 16:off + 16 + incl]
        off += 16 + incl
        name = hashlib.sha1(frame).hexdigest()[:16]
        (out / name).write_bytes(frame)
        n += 1
print(f"{n} frames -> {out}")
