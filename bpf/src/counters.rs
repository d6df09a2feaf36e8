//! What the program did with the packets it saw: one counter per outcome,
//! summed over CPUs. The order is `enum outcome` in `router.c`.

use std::fmt;

/// Where a packet went. Every packet the program sees is counted under
/// exactly one outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    /// Forwarded by the program: MACs rewritten, sent with `bpf_redirect`.
    Redirected,
    /// Forwarded by the program through the kernel's neighbor code
    /// (`bpf_redirect_neigh`), because the next hop's MAC was not known yet.
    RedirectedNeigh,
    /// Passed: the FIB does not forward it (a local address, or no route).
    PassLocal,
    /// Passed: the FIB has a blackhole, unreachable or prohibit route.
    PassUnreachable,
    /// Passed: forwarding is disabled on the lookup interface.
    PassFwdDisabled,
    /// Passed: not addressed to this host at L2 (broadcast, multicast, other
    /// host), or an IPv6 link-local or multicast address.
    PassNotHost,
    /// Passed: larger than the egress MTU (the kernel sends the ICMP error).
    PassMtu,
    /// Passed: TTL or hop limit would expire (the kernel sends the ICMP error).
    PassTtl,
    /// Passed: an IPv4 fragment or an IPv6 fragment header.
    PassFrag,
    /// Passed: IPv4 options or an IPv6 hop-by-hop header.
    PassOptions,
    /// Passed: a malformed header, or a helper failed (a refused redirect is
    /// counted here too, and that packet is dropped).
    PassError,
    /// Passed: neither IPv4 nor IPv6 (ARP, LLDP, more than one VLAN tag).
    PassNonIp,
}

impl Outcome {
    /// Every outcome, in the program's order (the counter array's index).
    pub const ALL: [Outcome; 12] = [
        Outcome::Redirected,
        Outcome::RedirectedNeigh,
        Outcome::PassLocal,
        Outcome::PassUnreachable,
        Outcome::PassFwdDisabled,
        Outcome::PassNotHost,
        Outcome::PassMtu,
        Outcome::PassTtl,
        Outcome::PassFrag,
        Outcome::PassOptions,
        Outcome::PassError,
        Outcome::PassNonIp,
    ];

    /// Its name in metrics and status (`redirected`, `pass_ttl`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Redirected => "redirected",
            Outcome::RedirectedNeigh => "redirected_neigh",
            Outcome::PassLocal => "pass_local",
            Outcome::PassUnreachable => "pass_unreachable",
            Outcome::PassFwdDisabled => "pass_fwd_disabled",
            Outcome::PassNotHost => "pass_not_host",
            Outcome::PassMtu => "pass_mtu",
            Outcome::PassTtl => "pass_ttl",
            Outcome::PassFrag => "pass_frag",
            Outcome::PassOptions => "pass_options",
            Outcome::PassError => "pass_error",
            Outcome::PassNonIp => "pass_non_ip",
        }
    }

    /// Whether the program forwarded the packet itself.
    pub fn is_forwarded(self) -> bool {
        matches!(self, Outcome::Redirected | Outcome::RedirectedNeigh)
    }

    pub(crate) fn index(self) -> u32 {
        // ALL is in discriminant order.
        self as u32
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Packet counts by outcome, summed over CPUs, since the program was loaded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    packets: [u64; Outcome::ALL.len()],
}

impl Counters {
    /// Packets with this outcome.
    pub fn get(&self, outcome: Outcome) -> u64 {
        self.packets[outcome.index() as usize]
    }

    pub(crate) fn set(&mut self, outcome: Outcome, packets: u64) {
        self.packets[outcome.index() as usize] = packets;
    }

    /// Every outcome with its count, in the program's order.
    pub fn iter(&self) -> impl Iterator<Item = (Outcome, u64)> + '_ {
        Outcome::ALL.iter().map(|&o| (o, self.get(o)))
    }

    /// Packets the program forwarded itself.
    pub fn forwarded(&self) -> u64 {
        self.iter()
            .filter(|(o, _)| o.is_forwarded())
            .map(|(_, n)| n)
            .sum()
    }

    /// Packets it saw in all.
    pub fn total(&self) -> u64 {
        self.packets.iter().sum()
    }

    /// What happened between `earlier` and `self` (saturating, per outcome).
    pub fn since(&self, earlier: &Counters) -> Counters {
        let mut d = Counters::default();
        for o in Outcome::ALL {
            d.set(o, self.get(o).saturating_sub(earlier.get(o)));
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_in_discriminant_order_and_names_are_unique() {
        for (i, o) in Outcome::ALL.iter().enumerate() {
            assert_eq!(o.index() as usize, i);
        }
        let mut names: Vec<_> = Outcome::ALL.iter().map(|o| o.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Outcome::ALL.len());
    }

    #[test]
    fn the_c_enum_has_the_same_order() {
        // router.c's enum outcome, OUT_<NAME> in upper case, must match ALL.
        let src = include_str!("../router.c");
        let start = src.find("enum outcome {").unwrap_or(0);
        let body = &src[start..src[start..].find("};").map_or(src.len(), |e| start + e)];
        let c_names: Vec<String> = body
            .split_whitespace()
            .filter_map(|w| w.strip_prefix("OUT_"))
            .map(|w| w.trim_end_matches(',').to_lowercase())
            .filter(|w| w != "max")
            .collect();
        let ours: Vec<&str> = Outcome::ALL.iter().map(|o| o.name()).collect();
        assert_eq!(c_names, ours);
    }

    #[test]
    fn sums_and_differences() {
        let mut a = Counters::default();
        a.set(Outcome::Redirected, 10);
        a.set(Outcome::RedirectedNeigh, 2);
        a.set(Outcome::PassTtl, 1);
        let mut b = a.clone();
        b.set(Outcome::Redirected, 15);
        assert_eq!(a.forwarded(), 12);
        assert_eq!(a.total(), 13);
        let d = b.since(&a);
        assert_eq!(d.get(Outcome::Redirected), 5);
        assert_eq!(d.total(), 5);
        assert_eq!(a.since(&b).get(Outcome::Redirected), 0);
    }
}
