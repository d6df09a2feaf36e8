#!/usr/bin/env python3
"""Describe golden BGP fixtures from Wireshark's decode of their capture.

    describe-fixtures.py [--local 10.99.0.1] FIXTURE_DIR...

Each FIXTURE_DIR holds capture.pcap, the messages the daemon under test sent
(NN-*.hex) and the ones its peer sent (peer/NN-*.hex), as written by
split-bgp-stream.py. This runs `tshark -T pdml` over the capture (TCP
reassembly on), pairs every BGP message Wireshark decodes with the fixture
file at the same position in the same direction, checks that length and type
agree (and exits non-zero if they do not), and prints a Markdown description
of each file made only from Wireshark's decoded fields. The fixture README is
written from this output.

Python 3 standard library + tshark.
"""

import argparse
import glob
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

TYPES = {1: "OPEN", 2: "UPDATE", 3: "NOTIFICATION", 4: "KEEPALIVE", 5: "ROUTE-REFRESH"}


def pdml(pcap):
    out = subprocess.run(
        ["tshark", "-r", pcap, "-o", "tcp.desegment_tcp_streams:TRUE", "-Y", "bgp",
         "-T", "pdml"], check=True, capture_output=True).stdout
    return ET.fromstring(out)


def field(el, name):
    return el.find(f".//field[@name='{name}']")


def fields(el, name):
    return el.findall(f".//field[@name='{name}']")


def show(el, name, default=None):
    f = field(el, name)
    return f.get("show") if f is not None else default


def sname(el):
    """showname without a leading bit pattern like '1... .... = '."""
    s = el.get("showname") or el.get("show") or ""
    return re.sub(r"^[01. ]+ = ", "", s)


def after_colon(s):
    return s.split(": ", 1)[1].strip() if ": " in s else s.strip()


# ---------------------------------------------------------------------------

SKIP_CAP = {"bgp.cap.type", "bgp.cap.length", "bgp.cap.reserved", "bgp.cap.gr.helper_mode_only"}


def leaves(el, skip):
    """Shownames of the leaf fields under el, depth first, minus skip and expert info."""
    out = []
    for ch in el:
        name = ch.get("name", "")
        if name in skip or name.startswith("_ws.expert"):
            continue
        if len(ch):
            sub = leaves(ch, skip)
            if sub:
                out += sub
            elif ch.get("showname"):
                out.append(sname(ch))
        elif ch.get("showname") or ch.get("show"):
            out.append(sname(ch))
    return out


def describe_open(m):
    lines = [f"version {show(m, 'bgp.open.version')}, My AS {show(m, 'bgp.open.myas')}, "
             f"hold time {show(m, 'bgp.open.holdtime')}, BGP identifier "
             f"{show(m, 'bgp.open.identifier')}, optional parameters length "
             f"{show(m, 'bgp.open.opt.len')}"]
    params = fields(m, "bgp.open.opt.param")
    caps_per = [len(p.findall("field[@name='bgp.cap']")) for p in params]
    lines.append(f"{len(params)} optional parameter(s), all type 2 (Capabilities), "
                 f"carrying {'/'.join(map(str, caps_per))} capabilities"
                 if all(show(p, "bgp.open.opt.param.type") == "2" for p in params)
                 else f"{len(params)} optional parameters (not all capabilities!)")
    n = 0
    for p in params:
        for cap in p.findall("field[@name='bgp.cap']"):
            n += 1
            code = show(cap, "bgp.cap.type")
            clen = show(cap, "bgp.cap.length")
            name = after_colon(cap.get("showname", ""))
            vals = leaves(cap, SKIP_CAP)
            desc = f"cap {code} {name}, length {clen}"
            if vals:
                desc += ": " + "; ".join(vals)
            lines.append(f"  {n}. {desc}")
    return lines


def as_path(attr):
    segs = []
    for seg in attr.findall("field[@name='bgp.update.path_attribute.as_path_segment']"):
        typ = after_colon(sname(seg.find("field[@name='bgp.update.path_attribute.as_path_segment.type']")))
        asns = [(f.get("name").rsplit(".", 1)[1], f.get("show")) for f in seg
                if f.get("name", "").startswith("bgp.update.path_attribute.as_path_segment.as")]
        width = {a for a, _ in asns}
        segs.append(f"{typ} [{' '.join(v for _, v in asns)}] "
                    f"({'2' if width == {'as2'} else '4'}-octet ASNs)")
    return "; ".join(segs)


def describe_attr(a):
    code = show(a, "bgp.update.path_attribute.type_code")
    flags = show(a, "bgp.update.path_attribute.flags")
    ext = show(a, "bgp.update.path_attribute.flags.extended_length") == "1"
    alen = show(a, "bgp.update.path_attribute.length")
    title = a.get("showname", "").replace("Path Attribute - ", "")
    name = title.split(":", 1)[0].strip()
    head = f"{name} (type {code}, flags {flags}{' = extended length' if ext else ''}, length {alen})"
    if code in ("2", "17"):
        return f"{head}: {as_path(a)}"
    if code == "14":
        nh = field(a, "bgp.update.path_attribute.mp_reach_nlri.next_hop")
        nhlen = int(nh.get("value")[:2], 16) if nh is not None else None
        addrs = [sname(f) for f in nh] if nh is not None else []
        nlri = [f.get("show") for f in field(a, "bgp.update.path_attribute.mp_reach_nlri")
                .findall("field")] if field(a, "bgp.update.path_attribute.mp_reach_nlri") is not None else []
        return (f"{head}: AFI {show(a, 'bgp.update.path_attribute.mp_reach_nlri.afi')} / SAFI "
                f"{show(a, 'bgp.update.path_attribute.mp_reach_nlri.safi')}, next hop length "
                f"{nhlen} ({'; '.join(addrs)}), SNPAs "
                f"{show(a, 'bgp.update.path_attribute.mp_reach_nlri.nbr_snpa')}, NLRI "
                f"{', '.join(nlri) or 'none'}")
    if code == "15":
        w = field(a, "bgp.update.path_attribute.mp_unreach_nlri")
        pfx = [f.get("show") for f in w.findall("field")] if w is not None else []
        return (f"{head}: AFI {show(a, 'bgp.update.path_attribute.mp_unreach_nlri.afi')} / SAFI "
                f"{show(a, 'bgp.update.path_attribute.mp_unreach_nlri.safi')}, withdrawn "
                f"{', '.join(pfx) or 'none'}")
    value = title.split(":", 1)[1].strip() if ":" in title else ""
    if not value:
        value = "; ".join(leaves(a, {"bgp.update.path_attribute.flags",
                                     "bgp.update.path_attribute.type_code",
                                     "bgp.update.path_attribute.length"}))
    return f"{head}: {value}"


def describe_update(m):
    wlen = show(m, "bgp.update.withdrawn_routes.length")
    alen = show(m, "bgp.update.path_attributes.length")
    wd = [f.get("show") for f in field(m, "bgp.update.withdrawn_routes").findall("field")] \
        if field(m, "bgp.update.withdrawn_routes") is not None else []
    nl = [f.get("show") for f in field(m, "bgp.update.nlri").findall("field")] \
        if field(m, "bgp.update.nlri") is not None else []
    attrs = fields(m, "bgp.update.path_attribute")
    lines = []
    if not wd and not attrs and not nl:
        lines.append("End-of-RIB marker for IPv4 unicast (withdrawn length 0, "
                     "path attribute length 0, no NLRI)")
        return lines
    if not wd and not nl and len(attrs) == 1 and show(attrs[0], "bgp.update.path_attribute.type_code") == "15" \
            and field(attrs[0], "bgp.update.path_attribute.mp_unreach_nlri") is not None \
            and not len(field(attrs[0], "bgp.update.path_attribute.mp_unreach_nlri")):
        lines.append("End-of-RIB marker (RFC 4724): only an empty MP_UNREACH_NLRI")
    lines.append(f"withdrawn routes length {wlen}: {', '.join(wd) or 'none'}")
    lines.append(f"total path attribute length {alen}:" + ("" if attrs else " none"))
    for i, a in enumerate(attrs, 1):
        lines.append(f"  {i}. {describe_attr(a)}")
    lines.append(f"NLRI: {', '.join(nl) or 'none'}")
    return lines


def describe_notification(m):
    lines = []
    major = field(m, "bgp.notify.major_error")
    lines.append(f"error code {after_colon(sname(major))}")
    for f in m.findall("field"):
        n = f.get("name", "")
        if n.startswith("bgp.notify.minor_error"):
            lines.append(f"subcode {after_colon(sname(f))}")
        elif n.startswith("bgp.notify.") and n != "bgp.notify.major_error":
            lines.append(sname(f))
    return lines


def describe(m):
    t = int(show(m, "bgp.type"))
    if t == 1:
        return describe_open(m)
    if t == 2:
        return describe_update(m)
    if t == 3:
        return describe_notification(m)
    if t == 4:
        return ["(no body)"]
    return leaves(m, {"bgp.marker", "bgp.length", "bgp.type"})


# ---------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dirs", nargs="+")
    ap.add_argument("--local", default="10.99.0.1", help="address of the daemon under test")
    ap.add_argument("--heading", default="###", help="Markdown heading prefix per directory")
    a = ap.parse_args()
    bad = 0
    for d in a.dirs:
        root = pdml(os.path.join(d, "capture.pcap"))
        seq = {"local": [], "peer": []}
        for pkt in root.findall("packet"):
            src = None
            for p in pkt.findall("proto"):
                if p.get("name") in ("ip", "ipv6"):
                    src = show(p, f"{p.get('name')}.src")
            frame = show(pkt.find("proto[@name='frame']"), "frame.number")
            for p in pkt.findall("proto[@name='bgp']"):
                seq["local" if src == a.local else "peer"].append((frame, p))
        name = os.path.basename(os.path.normpath(d))
        print(f"{a.heading} `{name}/`\n")
        for who, sub in (("local", ""), ("peer", "peer")):
            files = sorted(glob.glob(os.path.join(d, sub, "[0-9]*.hex")))
            msgs = seq[who]
            # a reconnect after the capture window may add messages split-bgp-stream ignored
            if len(msgs) < len(files):
                print(f"error: {d}/{sub}: {len(files)} files but tshark decoded "
                      f"{len(msgs)} messages", file=sys.stderr)
                bad += 1
            for fn, (frame, m) in zip(files, msgs):
                with open(fn) as f:
                    raw = bytes.fromhex("".join(f.read().split()))
                length, mtype = int(show(m, "bgp.length")), int(show(m, "bgp.type"))
                rel = os.path.relpath(fn, os.path.dirname(os.path.normpath(d)))
                if raw[:16] != b"\xff" * 16 or len(raw) != length or raw[18] != mtype \
                        or int.from_bytes(raw[16:18], "big") != length:
                    print(f"error: {rel}: file (len {len(raw)}, type {raw[18]}) does not match "
                          f"tshark (len {length}, type {mtype}, frame {frame})", file=sys.stderr)
                    bad += 1
                direction = "daemon under test -> peer" if who == "local" else \
                    "peer -> daemon under test"
                print(f"- **`{rel}`** — {TYPES.get(mtype, mtype)}, {length} bytes, "
                      f"{direction} (pcap frame {frame})")
                for line in describe(m):
                    indent = "  " + "  " * ((len(line) - len(line.lstrip())) // 2)
                    print(f"{indent}- {line.strip()}")
            print()
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
