#!/usr/bin/env python3
"""Writes the seed inputs of the bgp-core fuzz targets.

    python3 fuzz/make-seeds.py        # from bgp-core/

- fuzz/seeds/<target>/: a few hand-built messages (KEEPALIVE, OPEN with
  capabilities, UPDATEs with attributes, IPv4 NLRI, MP_REACH/MP_UNREACH IPv6,
  ADD-PATH, AS4_PATH, NOTIFICATION, ROUTE-REFRESH). Kept in git, together with
  the regression inputs of fixed crashes (regress-*), which this script leaves
  alone.
- fuzz/corpus/<target>/ (git-ignored, the working corpus): the messages captured
  from FRR, BIRD and GoBGP in tests/fixtures/*/ (and */peer/), each under the
  context that session used, and each capture's stream whole for the framer.

decode_message inputs are two context octets (see fuzz_targets/common.rs) and
the message; framer inputs are two control octets and a byte stream.
"""

import hashlib
import pathlib
import struct

HERE = pathlib.Path(__file__).resolve().parent
FIXTURES = HERE.parent / "tests" / "fixtures"

# Context octets (fuzz_targets/common.rs).
LEGACY = bytes([0x00, 0x00])          # 2-octet AS, unknown peer
MODERN = bytes([0x01, 0x00])          # 4-octet AS, unknown peer
MODERN_EBGP = bytes([0x01, 0x02])     # 4-octet AS, external peer AS 65001
MODERN_IBGP = bytes([0x01, 0x01])     # 4-octet AS, internal peer
ADDPATH_ALL_EXT = bytes([0x0F, 0x00])  # 4-octet, extended message, ADD-PATH both


def msg(kind, body):
    return b"\xff" * 16 + struct.pack("!HB", 19 + len(body), kind) + body


def attr(flags, code, value):
    if len(value) > 255 or flags & 0x10:
        return struct.pack("!BBH", flags | 0x10, code, len(value)) + value
    return struct.pack("!BBB", flags, code, len(value)) + value


def update(withdrawn=b"", attrs=b"", nlri=b""):
    body = struct.pack("!H", len(withdrawn)) + withdrawn
    body += struct.pack("!H", len(attrs)) + attrs + nlri
    return msg(2, body)


def cap(code, value=b""):
    return struct.pack("!BB", code, len(value)) + value


def open_msg(my_as, hold, bgp_id, caps, one_per_param=False):
    if one_per_param:
        params = b"".join(struct.pack("!BB", 2, len(c)) + c for c in caps)
    else:
        blob = b"".join(caps)
        params = struct.pack("!BB", 2, len(blob)) + blob
    body = struct.pack("!BHH4sB", 4, my_as, hold, bytes(bgp_id), len(params)) + params
    return msg(1, body)


def as_path4(*asns, kind=2):
    return struct.pack("!BB", kind, len(asns)) + b"".join(struct.pack("!I", a) for a in asns)


def as_path2(*asns, kind=2):
    return struct.pack("!BB", kind, len(asns)) + b"".join(struct.pack("!H", a) for a in asns)


def v6(s):
    import ipaddress
    return ipaddress.IPv6Address(s).packed


KEEPALIVE = msg(4, b"")
OPEN = open_msg(65001, 90, [10, 0, 0, 1], [
    cap(1, b"\x00\x01\x00\x01"),                    # MP IPv4 unicast
    cap(1, b"\x00\x02\x00\x01"),                    # MP IPv6 unicast
    cap(2), cap(128), cap(70), cap(6),              # RR, RR Cisco, ERR, ext message
    cap(65, struct.pack("!I", 4200000001)),         # 4-octet AS
    cap(69, b"\x00\x01\x01\x03\x00\x02\x01\x01"),   # ADD-PATH
    cap(64, b"\xc0\x78\x00\x01\x01\x80"),           # graceful restart
    cap(71, b"\x00\x01\x01\x80\x00\x0e\x10"),       # LLGR
    cap(5, b"\x00\x01\x00\x01\x00\x02"),            # extended next hop
    cap(73, b"\x07pgcap-x\x00"),                    # FQDN
    cap(9, b"\x03"),                                # role customer
    cap(200, b"\xde\xad"),                          # unknown
])
OPEN_FRR_STYLE = open_msg(23456, 180, [10, 0, 0, 2], [
    cap(1, b"\x00\x01\x00\x01"), cap(65, struct.pack("!I", 4200000002)), cap(2),
], one_per_param=True)
COMMON_ATTRS = (
    attr(0x40, 1, b"\x00")                                     # ORIGIN IGP
    + attr(0x40, 2, as_path4(65001, 4200000001, 65003))        # AS_PATH
)
UPDATE_V4 = update(
    attrs=COMMON_ATTRS
    + attr(0x40, 3, bytes([10, 0, 0, 1]))                      # NEXT_HOP
    + attr(0x80, 4, struct.pack("!I", 50))                     # MED
    + attr(0x40, 6, b"")                                       # ATOMIC_AGGREGATE
    + attr(0xC0, 7, struct.pack("!I4B", 65001, 10, 0, 0, 1))   # AGGREGATOR
    + attr(0xC0, 8, struct.pack("!II", 0xFDE90064, 0xFDE900C8))  # COMMUNITIES
    + attr(0xC0, 16, bytes([0, 2, 0xFD, 0xE9, 0, 0, 0, 1]))    # EXT COMMUNITIES
    + attr(0xC0, 32, struct.pack("!III", 65001, 1, 2))         # LARGE_COMMUNITY
    + attr(0xC0, 35, struct.pack("!I", 65001))                 # OTC
    + attr(0xE0, 99, b"opaque"),                               # unknown transitive
    nlri=bytes([24, 192, 0, 2, 25, 198, 51, 100, 0]),
)
UPDATE_V4_IBGP = update(
    withdrawn=bytes([16, 10, 1]),
    attrs=COMMON_ATTRS
    + attr(0x40, 3, bytes([10, 0, 0, 1]))
    + attr(0x40, 5, struct.pack("!I", 200))                    # LOCAL_PREF
    + attr(0x80, 9, bytes([10, 0, 0, 9]))                      # ORIGINATOR_ID
    + attr(0x80, 10, bytes([10, 0, 0, 10, 10, 0, 0, 11])),     # CLUSTER_LIST
    nlri=bytes([32, 10, 2, 3, 4, 0]),
)
UPDATE_V6 = update(attrs=attr(0x90, 14, b"\x00\x02\x01\x20" + v6("fd99::1") + v6("fe80::1") + b"\x00"
                              + bytes([48]) + v6("2001:db8:1::")[:6] + bytes([64]) + v6("2001:db8:2::")[:8])
                   + COMMON_ATTRS + attr(0xC0, 8, struct.pack("!I", 0xFDE9012C)))
UPDATE_V6_WITHDRAW = update(attrs=attr(0x90, 15, b"\x00\x02\x01" + bytes([48]) + v6("2001:db8:1::")[:6]))
EOR_V4 = update()
EOR_V6 = update(attrs=attr(0x80, 15, b"\x00\x02\x01"))
# 2-octet session: AS_PATH with AS_TRANS, AS4_PATH, AGGREGATOR AS_TRANS + AS4_AGGREGATOR.
UPDATE_AS2 = update(
    attrs=attr(0x40, 1, b"\x00")
    + attr(0x40, 2, as_path2(65010, kind=3) + as_path2(65001, 23456))
    + attr(0x40, 3, bytes([10, 0, 0, 1]))
    + attr(0xC0, 7, struct.pack("!H4B", 23456, 10, 0, 0, 1))
    + attr(0xC0, 17, as_path4(65001, 4200000001))
    + attr(0xC0, 18, struct.pack("!I4B", 4200000001, 10, 0, 0, 1)),
    nlri=bytes([24, 192, 0, 2]),
)
# ADD-PATH for both families: path identifiers before every prefix.
UPDATE_ADDPATH = update(
    withdrawn=struct.pack("!I", 7) + bytes([8, 10]),
    attrs=attr(0x90, 14, b"\x00\x02\x01\x10" + v6("fd99::1") + b"\x00"
               + struct.pack("!I", 1) + bytes([64]) + v6("2001:db8:2::")[:8])
    + COMMON_ATTRS + attr(0x40, 3, bytes([10, 0, 0, 1])),
    nlri=struct.pack("!I", 1) + bytes([24, 192, 0, 2]) + struct.pack("!I", 2) + bytes([24, 192, 0, 2]),
)
NOTIFICATION = msg(3, b"\x06\x02\x06golden")
ROUTE_REFRESH = msg(5, b"\x00\x01\x00\x01")
BORR = msg(5, b"\x00\x02\x01\x01")

DECODE_SEEDS = {
    "keepalive": MODERN + KEEPALIVE,
    "open": MODERN + OPEN,
    "open-one-per-param": LEGACY + OPEN_FRR_STYLE,
    "update-ipv4": MODERN_EBGP + UPDATE_V4,
    "update-ipv4-ibgp": MODERN_IBGP + UPDATE_V4_IBGP,
    "update-ipv6-mpreach": MODERN + UPDATE_V6,
    "update-ipv6-mpunreach": MODERN + UPDATE_V6_WITHDRAW,
    "update-eor-ipv4": MODERN + EOR_V4,
    "update-eor-ipv6": MODERN + EOR_V6,
    "update-as2-as4path": LEGACY + UPDATE_AS2,
    "update-addpath": ADDPATH_ALL_EXT + UPDATE_ADDPATH,
    "notification": MODERN + NOTIFICATION,
    "route-refresh": MODERN + ROUTE_REFRESH,
    "borr": MODERN + BORR,
}

SESSION = OPEN + KEEPALIVE + UPDATE_V4 + UPDATE_V6 + EOR_V4 + EOR_V6 + ROUTE_REFRESH + NOTIFICATION
# An UPDATE over 4096 octets: only framed once the limit is raised.
BIG = update(attrs=COMMON_ATTRS + attr(0x40, 3, bytes([10, 0, 0, 1])),
             nlri=b"".join(bytes([24, 10, i // 256, i % 256]) for i in range(1300)))
FRAMER_SEEDS = {
    "session-whole": b"\x00\x00" + SESSION,
    "session-small-chunks": b"\x00\x07" + SESSION,
    "session-bytewise": b"\x00\x01" + SESSION,
    "extended-after-2": b"\x82\x1f" + OPEN + KEEPALIVE + BIG + KEEPALIVE,
    "extended-not-raised": b"\x00\x40" + OPEN + KEEPALIVE + BIG,
}

# update_packer: context octets, attributes, next hop choices, bulk count, prefixes
# (see fuzz_targets/update_packer.rs for the layout).
PACKER_SEEDS = {
    "small-modern": bytes([0x01, 0x00, 0xFF, 0x00]) + bytes(range(1, 80)),
    "bulk-legacy": bytes([0x00, 0x00, 0x5B, 0x01, 10, 0, 0, 1, 0xFD, 0xE9, 0xFA, 0x56, 0xEA, 0x01, 2, 0, 40, 1])
    + bytes(40) + bytes([0x00, 0x20, 24]),
    "bulk-addpath-extended": bytes([0x0F, 0x00, 0x13, 0x02]) + bytes(range(30, 90)) + bytes([0xF0, 0x40]),
    "records": bytes([0x05, 0x00, 0x00, 0x00]) + bytes(60)
    + bytes([0x00, 24, 192, 0, 2, 0x40, 0, 0, 0, 9, 16, 10, 1, 0x80, 48, 0x20, 0x01, 0x0D, 0xB8, 0, 1, 0xC0, 1, 2, 3, 4, 128]) + bytes(16),
}


def write(target, name, data, base):
    d = base / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def who(case, side):
    return "peer" if side == "peer" else "sent"


def fixture_messages():
    """(case, stream-direction, name, bytes) for every captured message."""
    out = []
    for case in sorted(p for p in FIXTURES.glob("*") if p.is_dir()):
        for side in (case, case / "peer"):
            for f in sorted(side.glob("*.hex")):
                data = bytes.fromhex("".join(f.read_text().split()))
                out.append((case.name, side.name, f.stem, data))
    return out


def main():
    seeds, corpus = HERE / "seeds", HERE / "corpus"
    for name, data in DECODE_SEEDS.items():
        write("decode_message", name, data, seeds)
    for name, data in FRAMER_SEEDS.items():
        write("framer", name, data, seeds)
    for name, data in PACKER_SEEDS.items():
        write("update_packer", name, data, seeds)
    for target in ("decode_message", "framer", "update_packer"):
        (corpus / target).mkdir(parents=True, exist_ok=True)

    streams = {}
    n = 0
    for case, side, stem, data in fixture_messages():
        # bird-as2 ran without the 4-octet AS capability; the others with it, and
        # each daemon is an external peer of the other.
        four = 0 if case == "bird-as2" else 1
        for peer in (0, 2):
            name = f"fixture-{case}-{who(case, side)}-{stem}-p{peer}"
            write("decode_message", name, bytes([four, peer]) + data, corpus)
            n += 1
        streams.setdefault((case, side), b"")
        streams[(case, side)] += data
    for (case, side), data in streams.items():
        for ctl in (b"\x00\x00", b"\x00\x0d", b"\x81\x03"):
            name = f"fixture-{case}-{who(case, side)}-stream-{hashlib.sha1(ctl).hexdigest()[:6]}"
            write("framer", name, ctl + data, corpus)
    print(f"seeds: {len(DECODE_SEEDS)} + {len(FRAMER_SEEDS)} + {len(PACKER_SEEDS)}; "
          f"fixture inputs: {n} decode_message, {3 * len(streams)} framer")


if __name__ == "__main__":
    main()
