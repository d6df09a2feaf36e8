#!/usr/bin/env python3
"""Split the BGP messages of a captured session into one hex file per message.

Reads a classic libpcap file (what `tcpdump -w` writes; Ethernet, Linux
cooked v1/v2 or raw IP link types), reassembles every TCP connection to or
from port 179 in both directions (retransmissions and out-of-order segments
are handled by sequence number), cuts each direction into BGP messages at
the 16-byte marker + 2-byte length header and writes

    <out>/NN-<kind>.hex        messages sent by --local (the daemon under test)
    <peer-out>/NN-<kind>.hex   messages sent by the other side

NN counts messages in stream order, per direction, starting at 01. Each
file holds the complete message (marker, length, type, body) as lowercase
hex, 32 bytes per line. <kind> is derived from the message itself, e.g.
open, keepalive, update-ipv4, update-ipv6-mpreach, update-eor-ipv4,
update-withdraw-ipv4, update-withdraw-ipv6-mpunreach,
notification-cease-admin-shutdown.

Python 3 standard library only. Exits non-zero if the capture holds no BGP
connection, more than one connection carrying data (unless --allow-multi or
--first),
or a stream that does not split cleanly into BGP messages.
"""

import argparse
import ipaddress
import os
import struct
import sys

BGP_PORT = 179
MARKER = b"\xff" * 16
MSG_TYPES = {1: "open", 2: "update", 3: "notification", 4: "keepalive", 5: "route-refresh"}
AFI = {1: "ipv4", 2: "ipv6", 25: "l2vpn"}
SAFI = {1: "", 2: "-multicast", 4: "-labeled", 70: "-evpn", 128: "-vpn", 133: "-flowspec"}
NOTIF = {
    1: ("header-error", {1: "not-synchronized", 2: "bad-length", 3: "bad-type"}),
    2: ("open-error", {1: "unsupported-version", 2: "bad-peer-as", 3: "bad-bgp-id",
                       4: "unsupported-optional-parameter", 6: "unacceptable-hold-time",
                       7: "unsupported-capability", 11: "role-mismatch"}),
    3: ("update-error", {}),
    4: ("hold-timer-expired", {}),
    5: ("fsm-error", {}),
    6: ("cease", {1: "max-prefixes", 2: "admin-shutdown", 3: "peer-deconfigured",
                  4: "admin-reset", 5: "connection-rejected", 6: "config-change",
                  7: "connection-collision", 8: "out-of-resources", 9: "hard-reset",
                  10: "bfd-down"}),
    7: ("route-refresh-error", {}),
}


# ---------------------------------------------------------------------------
# pcap reading

def read_pcap(path):
    """Yield (frame_no, ts, link_payload, linktype) for each record."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        raise SystemExit(f"{path}: too short for a pcap file")
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        endian = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        endian = ">"
    elif magic == b"\x0a\x0d\x0d\x0a":
        raise SystemExit(f"{path}: pcapng is not supported, write classic pcap (tcpdump -w)")
    else:
        raise SystemExit(f"{path}: not a pcap file")
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    linktype = struct.unpack(endian + "I", data[20:24])[0] & 0x0FFFFFFF
    off, frame = 24, 0
    while off + 16 <= len(data):
        sec, frac, incl, _orig = struct.unpack(endian + "IIII", data[off:off + 16])
        off += 16
        pkt = data[off:off + incl]
        off += incl
        frame += 1
        yield frame, sec + frac / (1e9 if nano else 1e6), pkt, linktype


def ip_payload(pkt, linktype):
    """Return the IP packet inside a link-layer frame, or None."""
    if linktype == 1:  # Ethernet
        if len(pkt) < 14:
            return None
        etype, off = struct.unpack("!H", pkt[12:14])[0], 14
        while etype in (0x8100, 0x88A8) and len(pkt) >= off + 4:
            etype, off = struct.unpack("!H", pkt[off + 2:off + 4])[0], off + 4
    elif linktype == 113:  # Linux cooked v1
        etype, off = struct.unpack("!H", pkt[14:16])[0], 16
    elif linktype == 276:  # Linux cooked v2
        etype, off = struct.unpack("!H", pkt[0:2])[0], 20
    elif linktype in (12, 101, 228, 229):  # raw IP
        return pkt
    else:
        raise SystemExit(f"unsupported pcap link type {linktype}")
    if etype not in (0x0800, 0x86DD):
        return None
    return pkt[off:]


def tcp_segment(ip):
    """Parse IPv4/IPv6 + TCP. Return (src, sport, dst, dport, seq, flags, payload) or None."""
    if not ip:
        return None
    ver = ip[0] >> 4
    if ver == 4:
        ihl = (ip[0] & 15) * 4
        total = struct.unpack("!H", ip[2:4])[0]
        frag = struct.unpack("!H", ip[6:8])[0]
        if ip[9] != 6 or (frag & 0x1FFF) or (frag & 0x2000):
            return None  # not TCP, or a fragment
        src, dst = ipaddress.IPv4Address(ip[12:16]), ipaddress.IPv4Address(ip[16:20])
        seg = ip[ihl:total]
    elif ver == 6:
        nh, plen = ip[6], struct.unpack("!H", ip[4:6])[0]
        src, dst = ipaddress.IPv6Address(ip[8:24]), ipaddress.IPv6Address(ip[24:40])
        off = 40
        while nh in (0, 43, 60):  # hop-by-hop, routing, destination options
            nh, off = ip[off], off + (ip[off + 1] + 1) * 8
        if nh != 6:
            return None
        seg = ip[off:40 + plen]
    else:
        return None
    if len(seg) < 20:
        return None
    sport, dport, seq = struct.unpack("!HHI", seg[:8])
    doff = (seg[12] >> 4) * 4
    flags = seg[13]
    return str(src), sport, str(dst), dport, seq, flags, seg[doff:]


# ---------------------------------------------------------------------------
# TCP reassembly

class Direction:
    def __init__(self):
        self.isn = None        # seq of SYN
        self.segments = []     # (seq, payload, frame)

    def assemble(self):
        """Return (bytes, frame_of_byte) for the contiguous stream from the start."""
        if not self.segments:
            return b"", []
        start = (self.isn + 1) & 0xFFFFFFFF if self.isn is not None else \
            min(s for s, _, _ in self.segments)
        out = bytearray()
        frames = []
        pieces = sorted(((s - start) & 0xFFFFFFFF, p, fr) for s, p, fr in self.segments)
        for rel, payload, fr in pieces:
            if rel > len(out):
                raise SystemExit(f"gap in TCP stream at relative seq {len(out)} "
                                 f"(next segment at {rel}, frame {fr})")
            new = payload[len(out) - rel:]
            if new:
                out += new
                frames += [fr] * len(new)
        return bytes(out), frames


def connections(pcap):
    """Return [((endpoint, endpoint), {endpoint: Direction})] in order of first packet."""
    current = {}   # 4-tuple key -> index into conns
    conns = []
    for frame, _ts, pkt, lt in read_pcap(pcap):
        t = tcp_segment(ip_payload(pkt, lt))
        if not t:
            continue
        src, sport, dst, dport, seq, flags, payload = t
        if BGP_PORT not in (sport, dport):
            continue
        a, b = (src, sport), (dst, dport)
        key = (a, b) if (a, b) in current else (b, a) if (b, a) in current else None
        syn_only = flags & 0x02 and not flags & 0x10
        if key is None or (syn_only and conns[current[key]][1][a].isn not in (None, seq)):
            # first packet of a connection, or a new SYN reusing the same 4-tuple
            key = (a, b)
            current[key] = len(conns)
            conns.append((key, {a: Direction(), b: Direction()}))
        d = conns[current[key]][1][a]
        if flags & 0x02:  # SYN
            d.isn = seq
        if payload:
            d.segments.append((seq, payload, frame))
    return conns


# ---------------------------------------------------------------------------
# BGP

def split_messages(stream, frames, who):
    msgs = []
    off = 0
    while off < len(stream):
        hdr = stream[off:off + 19]
        if len(hdr) < 19:
            print(f"warning: {who}: {len(hdr)} trailing bytes (truncated message) ignored",
                  file=sys.stderr)
            break
        if hdr[:16] != MARKER:
            raise SystemExit(f"{who}: no BGP marker at stream offset {off}")
        length = struct.unpack("!H", hdr[16:18])[0]
        if length < 19:
            raise SystemExit(f"{who}: bad BGP length {length} at stream offset {off}")
        if off + length > len(stream):
            print(f"warning: {who}: last message truncated ({len(stream) - off} of {length} "
                  "bytes captured), ignored", file=sys.stderr)
            break
        msgs.append((stream[off:off + length], frames[off], frames[off + length - 1]))
        off += length
    return msgs


def afi_name(afi, safi):
    return AFI.get(afi, f"afi{afi}") + SAFI.get(safi, f"-safi{safi}")


def classify(msg):
    """A short file-name friendly description of one BGP message."""
    mtype = msg[18]
    body = msg[19:]
    name = MSG_TYPES.get(mtype, f"type{mtype}")
    if mtype == 3 and len(body) >= 2:
        code, sub = body[0], body[1]
        cname, subs = NOTIF.get(code, (f"code{code}", {}))
        return f"notification-{cname}" + (f"-{subs.get(sub, f'sub{sub}')}" if sub else "")
    if mtype == 5 and len(body) >= 4:
        afi, _res, safi = struct.unpack("!HBB", body[:4])
        return f"route-refresh-{afi_name(afi, safi)}"
    if mtype != 2:
        return name
    try:
        wlen = struct.unpack("!H", body[:2])[0]
        withdrawn = body[2:2 + wlen]
        alen = struct.unpack("!H", body[2 + wlen:4 + wlen])[0]
        attrs = body[4 + wlen:4 + wlen + alen]
        nlri = body[4 + wlen + alen:]
    except struct.error:
        return "update-malformed"
    if not withdrawn and not attrs and not nlri:
        return "update-eor-ipv4"
    parts = []
    if nlri:
        parts.append("ipv4")
    if withdrawn:
        parts.append("withdraw-ipv4")
    extra = []
    off = 0
    while off + 3 <= len(attrs):
        flags, code = attrs[off], attrs[off + 1]
        if flags & 0x10:
            alen_ = struct.unpack("!H", attrs[off + 2:off + 4])[0]
            val = attrs[off + 4:off + 4 + alen_]
            off += 4 + alen_
        else:
            alen_ = attrs[off + 2]
            val = attrs[off + 3:off + 3 + alen_]
            off += 3 + alen_
        if code == 14 and len(val) >= 3:
            afi, safi = struct.unpack("!HB", val[:3])
            parts.append(f"{afi_name(afi, safi)}-mpreach")
        elif code == 15 and len(val) >= 3:
            afi, safi = struct.unpack("!HB", val[:3])
            if len(val) == 3 and not nlri and not withdrawn and off >= len(attrs) and \
                    len(attrs) == 3 + 3 + (1 if flags & 0x10 else 0):
                return f"update-eor-{afi_name(afi, safi)}"
            parts.append(f"withdraw-{afi_name(afi, safi)}-mpunreach")
        elif code == 17:
            extra.append("as4path")
        elif code == 18:
            extra.append("as4aggregator")
    if not parts:
        parts.append("attrs-only")
    return "-".join(["update"] + parts + extra)


def write_messages(msgs, outdir, clean):
    os.makedirs(outdir, exist_ok=True)
    if clean:
        for fn in os.listdir(outdir):
            if fn.endswith(".hex"):
                os.remove(os.path.join(outdir, fn))
    width = max(2, len(str(len(msgs))))
    names = []
    for i, (msg, f0, f1) in enumerate(msgs, 1):
        name = f"{i:0{width}d}-{classify(msg)}.hex"
        hx = msg.hex()
        lines = [hx[j:j + 64] for j in range(0, len(hx), 64)]
        with open(os.path.join(outdir, name), "w") as f:
            f.write("\n".join(lines) + "\n")
        names.append((name, len(msg), f0, f1))
    return names


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pcap")
    ap.add_argument("--local", required=True,
                    help="IP address of the daemon under test; its messages go to --out")
    ap.add_argument("--out", required=True, help="directory for messages sent by --local")
    ap.add_argument("--peer-out", help="directory for messages sent by the other side")
    ap.add_argument("--clean", action="store_true", help="remove *.hex in the output dirs first")
    multi = ap.add_mutually_exclusive_group()
    multi.add_argument("--allow-multi", action="store_true",
                       help="accept several connections with data (messages are concatenated "
                       "in connection order)")
    multi.add_argument("--first", action="store_true",
                       help="use only the first connection carrying data (warn about others, "
                       "e.g. a reconnect attempt after the session was shut down)")
    a = ap.parse_args()
    local = str(ipaddress.ip_address(a.local))

    conns = [(k, d) for k, d in connections(a.pcap)
             if any(x.segments for x in d.values())]
    if not conns:
        raise SystemExit(f"{a.pcap}: no TCP connection on port {BGP_PORT} carrying data")
    if len(conns) > 1 and a.first:
        for k, _ in conns[1:]:
            print(f"warning: ignoring later connection {k[0]}->{k[1]}", file=sys.stderr)
        conns = conns[:1]
    if len(conns) > 1 and not a.allow_multi:
        raise SystemExit(f"{a.pcap}: {len(conns)} connections carry data: "
                         + ", ".join(f"{k[0]}->{k[1]}" for k, _ in conns))
    sent, recv = [], []
    for key, dirs in conns:
        for ep, d in dirs.items():
            stream, frames = d.assemble()
            who = f"{ep[0]}:{ep[1]}"
            msgs = split_messages(stream, frames, who)
            (sent if ep[0] == local else recv).extend(msgs)
    if not any(ep[0] == local for k, _ in conns for ep in k):
        raise SystemExit(f"{a.pcap}: no connection involves {local}")

    for label, msgs, outdir in (("local", sent, a.out), ("peer", recv, a.peer_out)):
        if outdir is None:
            continue
        for name, length, f0, f1 in write_messages(msgs, outdir, a.clean):
            frames = f"{f0}" if f0 == f1 else f"{f0}-{f1}"
            print(f"{label}\t{os.path.join(outdir, name)}\t{length}\tframes {frames}")


if __name__ == "__main__":
    main()
