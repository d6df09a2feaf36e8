//! The program on crafted packets, through `BPF_PROG_TEST_RUN`: every outcome,
//! with the FIB lookups answered by a real kernel FIB in a private network
//! namespace (one per test, made with `unshare` on the test's thread and gone
//! with it). Needs root; skipped otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{Ipv4Addr, Ipv6Addr};
use std::process::Command;

use podpeer_bpf::router::{TC_ACT_REDIRECT, TC_ACT_UNSPEC};
use podpeer_bpf::{Counters, Outcome, Router};

const IN_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const OUT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x99];
const NEXT_HOP_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x22];
const SMALL_MTU_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x03];

const CLIENT4: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 2);
const CLIENT6: Ipv6Addr = Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 2);
/// Routed via 10.2.0.2 / fd00:2::2, whose MAC is known.
const VIP4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 7);
/// Routed via 10.2.0.3 / fd00:2::3, whose MAC is not known.
const UNRESOLVED4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 9);
const UNRESOLVED6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 9);

/// The private namespace's interfaces.
struct Env {
    in0: u32,
    out0: u32,
    alt0: u32,
}

fn sh(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `f` on a thread in a new network namespace set up as a router:
/// `in0` (10.1.0.1, fd00:1::1) where packets arrive, `out0` (10.2.0.1,
/// fd00:2::1) toward the next hops, `small0` (MTU 1280), `alt0` (its own
/// table 100 by an `iif` rule), forwarding on.
fn in_router_netns(f: impl FnOnce(&Env, &mut Router) + Send) {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("SKIPPED: needs root (network namespaces, BPF)");
        return;
    }
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            // Children (ip, sysctl) start in this thread's namespace.
            sh(&["ip", "link", "set", "lo", "up"]);
            for (a, b, mac) in [
                ("in0", "in1", IN_MAC),
                ("out0", "out1", OUT_MAC),
                ("small0", "small1", SMALL_MTU_MAC),
                ("alt0", "alt1", [0x02, 0, 0, 0, 0, 0x04]),
            ] {
                let mac = mac_str(mac);
                sh(&[
                    "ip", "link", "add", a, "address", &mac, "type", "veth", "peer", "name", b,
                ]);
                sh(&["ip", "link", "set", a, "up"]);
                sh(&["ip", "link", "set", b, "up"]);
            }
            sh(&["ip", "link", "set", "small0", "mtu", "1280"]);
            sh(&[
                "sysctl",
                "-qw",
                "net.ipv4.ip_forward=1",
                "net.ipv6.conf.all.forwarding=1",
            ]);
            for (addr, dev) in [
                ("10.1.0.1/24", "in0"),
                ("fd00:1::1/64", "in0"),
                ("10.2.0.1/24", "out0"),
                ("fd00:2::1/64", "out0"),
                ("10.3.0.1/24", "small0"),
            ] {
                sh(&["ip", "addr", "add", addr, "dev", dev, "nodad"]);
            }
            let known = mac_str(NEXT_HOP_MAC);
            for cmd in [
                "ip route add 198.51.100.0/24 via 10.2.0.2",
                "ip route add 203.0.113.0/24 via 10.2.0.3",
                "ip -6 route add 2001:db8:1::/64 via fd00:2::2",
                "ip -6 route add 2001:db8:2::/64 via fd00:2::3",
                "ip route add blackhole 198.18.0.0/15",
                "ip route add 100.64.0.0/24 via 10.3.0.2",
                "ip route add 192.0.2.0/24 via 10.2.0.2 dev out0 onlink table 100",
                "ip rule add iif alt0 lookup 100",
            ] {
                sh(&cmd.split(' ').collect::<Vec<_>>());
            }
            for (addr, dev) in [
                ("10.2.0.2", "out0"),
                ("fd00:2::2", "out0"),
                ("10.3.0.2", "small0"),
            ] {
                sh(&[
                    "ip",
                    "neigh",
                    "add",
                    addr,
                    "lladdr",
                    &known,
                    "dev",
                    dev,
                    "nud",
                    "permanent",
                ]);
            }
            let ifindex = |n| nix::net::if_::if_nametoindex(n).unwrap();
            let env = Env {
                in0: ifindex("in0"),
                out0: ifindex("out0"),
                alt0: ifindex("alt0"),
            };
            assert_ne!(env.out0, 0);
            let mut router = Router::load().unwrap();
            f(&env, &mut router);
        })
        .join()
        .unwrap();
    });
}

fn mac_str(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

// ---------------------------------------------------------------------------
// Packets.

fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn ethernet(dst: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&CLIENT_MAC);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn udp(len: usize) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend_from_slice(&40000u16.to_be_bytes());
    u.extend_from_slice(&53u16.to_be_bytes());
    u.extend_from_slice(&((8 + len) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]); // no UDP checksum (allowed over IPv4)
    u.extend(std::iter::repeat_n(0xab, len));
    u
}

/// An IPv4 UDP packet with a valid header checksum.
fn ipv4(dst: Ipv4Addr, ttl: u8, frag_off: u16, options: &[u8], payload_len: usize) -> Vec<u8> {
    let l4 = udp(payload_len);
    let ihl = 5 + options.len() / 4;
    let total = ihl * 4 + l4.len();
    let mut h = vec![(4 << 4) | ihl as u8, 0];
    h.extend_from_slice(&(total as u16).to_be_bytes());
    h.extend_from_slice(&[0x12, 0x34]);
    h.extend_from_slice(&frag_off.to_be_bytes());
    h.extend_from_slice(&[ttl, 17, 0, 0]);
    h.extend_from_slice(&CLIENT4.octets());
    h.extend_from_slice(&dst.octets());
    h.extend_from_slice(options);
    let c = checksum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h.extend_from_slice(&l4);
    h
}

/// An IPv6 UDP packet, optionally behind a fragment header.
fn ipv6(dst: Ipv6Addr, hop_limit: u8, fragment_header: bool) -> Vec<u8> {
    let mut l4 = udp(32);
    let mut next = 17u8;
    if fragment_header {
        let mut f = vec![17, 0, 0, 1, 0, 0, 0, 42]; // offset 0, more fragments
        f.append(&mut l4);
        l4 = f;
        next = 44;
    }
    let mut h = vec![0x60, 0, 0, 0];
    h.extend_from_slice(&(l4.len() as u16).to_be_bytes());
    h.extend_from_slice(&[next, hop_limit]);
    h.extend_from_slice(&CLIENT6.octets());
    h.extend_from_slice(&dst.octets());
    h.extend_from_slice(&l4);
    h
}

fn frame4(dst: Ipv4Addr, ttl: u8) -> Vec<u8> {
    ethernet(IN_MAC, 0x0800, &ipv4(dst, ttl, 0, &[], 32))
}

fn frame6(dst: Ipv6Addr, hop_limit: u8) -> Vec<u8> {
    ethernet(IN_MAC, 0x86dd, &ipv6(dst, hop_limit, false))
}

/// Runs the frame through the program; the one outcome it was counted under.
fn run(router: &Router, env: &Env, frame: &[u8]) -> (i32, Vec<u8>, Outcome) {
    run_on(router, env.in0, frame)
}

fn run_on(router: &Router, ifindex: u32, frame: &[u8]) -> (i32, Vec<u8>, Outcome) {
    let before = router.counters().unwrap();
    let out = router.test_run(frame, ifindex).unwrap();
    let d: Counters = router.counters().unwrap().since(&before);
    assert_eq!(d.total(), 1, "one packet, one count: {d:?}");
    let outcome = d.iter().find(|(_, n)| *n == 1).unwrap().0;
    (out.verdict, out.packet, outcome)
}

/// The frame the program passed on must be the one it was given.
fn assert_passed(frame: &[u8], (verdict, packet, outcome): (i32, Vec<u8>, Outcome), want: Outcome) {
    assert_eq!(outcome, want);
    assert_eq!(verdict, TC_ACT_UNSPEC, "passed on to the kernel");
    assert_eq!(packet, frame, "passed unchanged");
}

fn assert_ipv4_forwarded(frame: &[u8], out: &[u8], dst_mac: [u8; 6], src_mac: [u8; 6]) {
    assert_eq!(out.len(), frame.len());
    assert_eq!(out[0..6], dst_mac, "destination MAC");
    assert_eq!(out[6..12], src_mac, "source MAC");
    let (ip_in, ip_out) = (&frame[14..34], &out[14..34]);
    assert_eq!(ip_out[8], ip_in[8] - 1, "TTL decremented");
    assert_eq!(checksum(ip_out), 0, "header checksum valid");
    // Nothing else changed: only TTL and checksum differ.
    for i in (0..20).filter(|i| ![8, 10, 11].contains(i)) {
        assert_eq!(ip_out[i], ip_in[i], "IPv4 header byte {i}");
    }
    assert_eq!(out[34..], frame[34..], "payload");
}

// ---------------------------------------------------------------------------
// The outcomes.

#[test]
fn ipv4_forwarded_with_macs_rewritten_ttl_decremented_checksum_valid() {
    in_router_netns(|env, router| {
        for ttl in [64, 2, 255] {
            let frame = frame4(VIP4, ttl);
            let (verdict, out, outcome) = run(router, env, &frame);
            assert_eq!(outcome, Outcome::Redirected);
            assert_eq!(verdict, TC_ACT_REDIRECT);
            assert_ipv4_forwarded(&frame, &out, NEXT_HOP_MAC, OUT_MAC);
        }
    });
}

#[test]
fn ipv6_forwarded_with_hop_limit_decremented() {
    in_router_netns(|env, router| {
        let frame = frame6(VIP6, 64);
        let (verdict, out, outcome) = run(router, env, &frame);
        assert_eq!(outcome, Outcome::Redirected);
        assert_eq!(verdict, TC_ACT_REDIRECT);
        assert_eq!(out[0..6], NEXT_HOP_MAC);
        assert_eq!(out[6..12], OUT_MAC);
        assert_eq!(out[14 + 7], 63, "hop limit");
        assert_eq!(out[12..14], frame[12..14]);
        let mut expected = frame[14..].to_vec();
        expected[7] = 63;
        assert_eq!(out[14..], expected[..], "nothing else changed");
    });
}

#[test]
fn unknown_neighbor_goes_through_redirect_neigh() {
    in_router_netns(|env, router| {
        let frame = frame4(UNRESOLVED4, 64);
        let (verdict, out, outcome) = run(router, env, &frame);
        assert_eq!(outcome, Outcome::RedirectedNeigh);
        assert_eq!(verdict, TC_ACT_REDIRECT);
        // The kernel's neighbor code writes the MACs later; TTL is ours.
        assert_eq!(out[0..12], frame[0..12]);
        assert_eq!(out[14 + 8], 63);
        assert_eq!(checksum(&out[14..34]), 0);

        let frame = frame6(UNRESOLVED6, 64);
        let (verdict, out, outcome) = run(router, env, &frame);
        assert_eq!(outcome, Outcome::RedirectedNeigh);
        assert_eq!(verdict, TC_ACT_REDIRECT);
        assert_eq!(out[14 + 7], 63);
    });
}

#[test]
fn local_destination_passes() {
    in_router_netns(|env, router| {
        let frame = frame4(Ipv4Addr::new(10, 1, 0, 1), 64);
        assert_passed(&frame, run(router, env, &frame), Outcome::PassLocal);
        // The router's address on another interface is local too.
        let frame = frame4(Ipv4Addr::new(10, 2, 0, 1), 64);
        assert_passed(&frame, run(router, env, &frame), Outcome::PassLocal);
        let frame = frame6(Ipv6Addr::new(0xfd00, 2, 0, 0, 0, 0, 0, 1), 64);
        assert_passed(&frame, run(router, env, &frame), Outcome::PassLocal);
        // No route at all: the kernel answers (unreachable) or drops.
        let frame = frame4(Ipv4Addr::new(192, 0, 2, 5), 64);
        assert_passed(&frame, run(router, env, &frame), Outcome::PassLocal);
    });
}

#[test]
fn ttl_one_passes_for_the_kernel_to_answer() {
    in_router_netns(|env, router| {
        for ttl in [1, 0] {
            let frame = frame4(VIP4, ttl);
            assert_passed(&frame, run(router, env, &frame), Outcome::PassTtl);
        }
        let frame = frame6(VIP6, 1);
        assert_passed(&frame, run(router, env, &frame), Outcome::PassTtl);
        // TTL 1 to a local address is local delivery, not expiry.
        let frame = frame4(Ipv4Addr::new(10, 1, 0, 1), 1);
        assert_passed(&frame, run(router, env, &frame), Outcome::PassLocal);
    });
}

#[test]
fn fragments_pass() {
    in_router_netns(|env, router| {
        for frag_off in [0x2000, 0x0010, 0x2010] {
            let frame = ethernet(IN_MAC, 0x0800, &ipv4(VIP4, 64, frag_off, &[], 32));
            assert_passed(&frame, run(router, env, &frame), Outcome::PassFrag);
        }
        // Don't-fragment alone is no fragment.
        let frame = ethernet(IN_MAC, 0x0800, &ipv4(VIP4, 64, 0x4000, &[], 32));
        assert_eq!(run(router, env, &frame).2, Outcome::Redirected);
        let frame = ethernet(IN_MAC, 0x86dd, &ipv6(VIP6, 64, true));
        assert_passed(&frame, run(router, env, &frame), Outcome::PassFrag);
    });
}

#[test]
fn non_ip_passes() {
    in_router_netns(|env, router| {
        // An ARP request.
        let mut arp = vec![0, 1, 8, 0, 6, 4, 0, 1];
        arp.extend_from_slice(&CLIENT_MAC);
        arp.extend_from_slice(&CLIENT4.octets());
        arp.extend_from_slice(&[0; 6]);
        arp.extend_from_slice(&[10, 1, 0, 1]);
        let frame = ethernet([0xff; 6], 0x0806, &arp);
        assert_passed(&frame, run(router, env, &frame), Outcome::PassNonIp);
        // LLDP.
        let frame = ethernet([0x01, 0x80, 0xc2, 0, 0, 0x0e], 0x88cc, &[0; 46]);
        assert_passed(&frame, run(router, env, &frame), Outcome::PassNonIp);
        // Two VLAN tags.
        let mut inner = vec![0x00, 0x64, 0x81, 0x00, 0x00, 0x0a, 0x08, 0x00];
        inner.extend_from_slice(&ipv4(VIP4, 64, 0, &[], 32));
        let frame = ethernet(IN_MAC, 0x88a8, &inner);
        assert_passed(&frame, run(router, env, &frame), Outcome::PassNonIp);
    });
}

#[test]
fn vlan_tagged_ipv4_is_forwarded_untagged() {
    in_router_netns(|env, router| {
        let mut tagged = vec![0x00, 0x64, 0x08, 0x00]; // VLAN 100, then IPv4
        tagged.extend_from_slice(&ipv4(VIP4, 64, 0, &[], 32));
        let frame = ethernet(IN_MAC, 0x8100, &tagged);
        let (verdict, out, outcome) = run(router, env, &frame);
        assert_eq!(outcome, Outcome::Redirected);
        assert_eq!(verdict, TC_ACT_REDIRECT);
        // The tag is gone; the rest is an ordinary forwarded frame.
        assert_eq!(out.len(), frame.len() - 4);
        assert_eq!(out[12..14], [0x08, 0x00]);
        let untagged = frame4(VIP4, 64);
        assert_ipv4_forwarded(&untagged, &out, NEXT_HOP_MAC, OUT_MAC);

        // A tagged packet the program does not forward keeps its tag.
        let mut tagged = vec![0x00, 0x64, 0x08, 0x00];
        tagged.extend_from_slice(&ipv4(VIP4, 1, 0, &[], 32));
        let frame = ethernet(IN_MAC, 0x8100, &tagged);
        assert_passed(&frame, run(router, env, &frame), Outcome::PassTtl);
    });
}

#[test]
fn other_outcomes_pass() {
    in_router_netns(|env, router| {
        let frame = frame4(Ipv4Addr::new(198, 18, 0, 1), 64);
        assert_passed(&frame, run(router, env, &frame), Outcome::PassUnreachable);

        // 1400 bytes through the 1280-byte link: the kernel sends the error.
        let frame = ethernet(
            IN_MAC,
            0x0800,
            &ipv4(Ipv4Addr::new(100, 64, 0, 1), 64, 0, &[], 1400),
        );
        assert_passed(&frame, run(router, env, &frame), Outcome::PassMtu);
        // A small one takes that route fine.
        let frame = ethernet(
            IN_MAC,
            0x0800,
            &ipv4(Ipv4Addr::new(100, 64, 0, 1), 64, 0, &[], 100),
        );
        let (_, out, outcome) = run(router, env, &frame);
        assert_eq!(outcome, Outcome::Redirected);
        assert_ipv4_forwarded(&frame, &out, NEXT_HOP_MAC, SMALL_MTU_MAC);

        // Router alert option.
        let frame = ethernet(IN_MAC, 0x0800, &ipv4(VIP4, 64, 0, &[0x94, 0x04, 0, 0], 32));
        assert_passed(&frame, run(router, env, &frame), Outcome::PassOptions);

        // Broadcast at L2, and a frame for another host.
        let mut frame = frame4(VIP4, 64);
        frame[0..6].copy_from_slice(&[0xff; 6]);
        assert_passed(&frame, run(router, env, &frame), Outcome::PassNotHost);
        frame[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x77]);
        assert_passed(&frame, run(router, env, &frame), Outcome::PassNotHost);
        // IPv6 link-local destination.
        let frame = frame6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1), 64);
        assert_passed(&frame, run(router, env, &frame), Outcome::PassNotHost);

        // Malformed: a header length under 20 bytes, an IPv6 header under
        // the IPv4 type. (Test runs refuse truncated IP headers outright.)
        let mut packet = ipv4(VIP4, 64, 0, &[], 32);
        packet[0] = 0x44;
        let frame = ethernet(IN_MAC, 0x0800, &packet);
        assert_passed(&frame, run(router, env, &frame), Outcome::PassError);
        let frame = ethernet(IN_MAC, 0x0800, &ipv6(VIP6, 64, false));
        assert_passed(&frame, run(router, env, &frame), Outcome::PassError);
    });
}

#[test]
fn forwarding_disabled_on_the_interface_passes() {
    in_router_netns(|env, router| {
        sh(&["sysctl", "-qw", "net.ipv4.conf.in0.forwarding=0"]);
        let frame = frame4(VIP4, 64);
        assert_passed(&frame, run(router, env, &frame), Outcome::PassFwdDisabled);
    });
}

#[test]
fn lookup_from_another_interface() {
    in_router_netns(|env, router| {
        // 192.0.2.0/24 is only in table 100, which `iif alt0` selects.
        let frame = frame4(Ipv4Addr::new(192, 0, 2, 5), 64);
        assert_eq!(run(router, env, &frame).2, Outcome::PassLocal);

        router.set_lookup_from(env.in0, env.alt0).unwrap();
        assert_eq!(router.lookup_from().unwrap(), vec![(env.in0, env.alt0)]);
        let (verdict, out, outcome) = run(router, env, &frame);
        assert_eq!(outcome, Outcome::Redirected);
        assert_eq!(verdict, TC_ACT_REDIRECT);
        assert_ipv4_forwarded(&frame, &out, NEXT_HOP_MAC, OUT_MAC);

        assert!(router.clear_lookup_from(env.in0).unwrap());
        assert!(!router.clear_lookup_from(env.in0).unwrap());
        assert_eq!(run(router, env, &frame).2, Outcome::PassLocal);
    });
}
