//! Finding the node and planning the sessions: which addresses to peer with,
//! which families each session carries, and the next hops and router id that
//! follow from the pod's own addresses.
//!
//! Families: each VIP goes over the sessions of its own family. A family with
//! no session of its own goes over the other family's sessions only when the
//! pod has an address of that family to give as next hop (an IPv6 VIP over an
//! IPv4 session needs a global IPv6 address on the interface toward the node);
//! otherwise its VIPs are not announced, with a warning.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket};
use std::time::Duration;

use bgp_core::wire::AfiSafi;
use ipnet::IpNet;
use podpeer_host::netlink::{Gateway, Netlink};
use tracing::{info, warn};

/// A node address to peer with, and how it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePeer {
    /// The node's address.
    pub address: IpAddr,
    /// The interface toward it, when known (needed for a link-local address).
    pub ifname: Option<String>,
    /// Its interface index, when known.
    pub ifindex: Option<u32>,
    /// How it was found, for logs and status: `default gateway via eth0`,
    /// `configured`.
    pub via: String,
}

impl NodePeer {
    /// A peer from a default route.
    pub fn from_gateway(g: &Gateway) -> Self {
        Self {
            address: g.address,
            ifname: Some(g.ifname.clone()),
            ifindex: Some(g.ifindex),
            via: format!("default gateway via {}", g.ifname),
        }
    }

    /// Whether the address is an IPv6 link-local one (the session must be
    /// bound to the interface).
    pub fn is_link_local(&self) -> bool {
        matches!(self.address, IpAddr::V6(a) if a.is_unicast_link_local())
    }
}

/// One session to open: the peer, the families it carries and the next hops
/// for the other family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionPlan {
    /// The node address.
    pub peer: NodePeer,
    /// The families to negotiate.
    pub families: Vec<AfiSafi>,
    /// Next hop of IPv4 VIPs over an IPv6 session.
    pub next_hop_v4: Option<Ipv4Addr>,
    /// Next hop of IPv6 VIPs: over an IPv4 session, or instead of the
    /// link-local session address.
    pub next_hop_v6: Option<Ipv6Addr>,
}

impl SessionPlan {
    /// Whether the session carries `prefix`'s family.
    pub fn carries(&self, prefix: &IpNet) -> bool {
        self.families.contains(&family_of(prefix))
    }
}

/// The family of a prefix.
pub fn family_of(prefix: &IpNet) -> AfiSafi {
    match prefix {
        IpNet::V4(_) => AfiSafi::IPV4_UNICAST,
        IpNet::V6(_) => AfiSafi::IPV6_UNICAST,
    }
}

/// The pod's own addresses that matter for next hops.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PodAddresses {
    /// The IPv4 source toward the node.
    pub v4: Option<Ipv4Addr>,
    /// A global IPv6 address toward the node.
    pub v6: Option<Ipv6Addr>,
    /// Whether the IPv6 source toward an IPv6 node is link-local.
    pub v6_session_link_local: bool,
}

/// Plans the sessions: one per peer, families as the module doc says. Returns
/// the plans and warnings for VIP families no session can carry.
pub fn plan(
    peers: &[NodePeer],
    pod: PodAddresses,
    vips: &[IpNet],
) -> (Vec<SessionPlan>, Vec<String>) {
    let has_v4_session = peers.iter().any(|p| p.address.is_ipv4());
    let has_v6_session = peers.iter().any(|p| p.address.is_ipv6());
    let has_v4_vips = vips.iter().any(|v| matches!(v, IpNet::V4(_)));
    let has_v6_vips = vips.iter().any(|v| matches!(v, IpNet::V6(_)));
    let v6_over_v4 = !has_v6_session && has_v6_vips && pod.v6.is_some();
    let v4_over_v6 = !has_v4_session && has_v4_vips && pod.v4.is_some();
    let mut warnings = Vec::new();
    if has_v6_vips && !has_v6_session && pod.v6.is_none() && has_v4_session {
        warnings.push(
            "IPv6 VIPs are not announced: there is no IPv6 session and no global IPv6 address to give as next hop over IPv4"
                .to_owned(),
        );
    }
    if has_v4_vips && !has_v4_session && pod.v4.is_none() && has_v6_session {
        warnings.push(
            "IPv4 VIPs are not announced: there is no IPv4 session and no IPv4 address to give as next hop over IPv6"
                .to_owned(),
        );
    }
    if has_v6_vips && pod.v6_session_link_local && pod.v6.is_none() {
        warnings.push(
            "IPv6 VIPs go out with the link-local session address as next hop: the pod has no global IPv6 address"
                .to_owned(),
        );
    }
    let plans = peers
        .iter()
        .map(|p| {
            let (families, next_hop_v4, next_hop_v6) = if p.address.is_ipv4() {
                let mut f = vec![AfiSafi::IPV4_UNICAST];
                if v6_over_v4 {
                    f.push(AfiSafi::IPV6_UNICAST);
                }
                (f, None, pod.v6.filter(|_| v6_over_v4))
            } else {
                let mut f = vec![AfiSafi::IPV6_UNICAST];
                if v4_over_v6 {
                    f.push(AfiSafi::IPV4_UNICAST);
                }
                // A link-local session address is a poor next hop: give the
                // global one when there is one.
                let nh6 = pod.v6.filter(|_| pod.v6_session_link_local);
                (f, pod.v4.filter(|_| v4_over_v6), nh6)
            };
            SessionPlan {
                peer: p.clone(),
                families,
                next_hop_v4,
                next_hop_v6,
            }
        })
        .collect();
    (plans, warnings)
}

/// Waits until the pod has a default gateway (the CNI may still be setting
/// up), retrying with backoff from 250 ms to 10 s and logging each miss.
/// Returns one peer per distinct gateway address.
pub async fn discover(netlink: &Netlink) -> Vec<NodePeer> {
    let mut delay = Duration::from_millis(250);
    loop {
        match netlink.default_gateways().await {
            Ok(gws) if !gws.is_empty() => {
                let mut peers: Vec<NodePeer> = Vec::new();
                for g in &gws {
                    if peers.iter().any(|p| p.address == g.address) {
                        continue;
                    }
                    peers.push(NodePeer::from_gateway(g));
                }
                return peers;
            }
            Ok(_) => info!(
                "no default gateway yet (is the CNI still setting up?); retrying in {}",
                crate::config::fmt_duration(delay)
            ),
            Err(e) => warn!(
                "cannot read the default gateways: {e}; retrying in {}",
                crate::config::fmt_duration(delay)
            ),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(10));
    }
}

/// The pod's source address toward `peer` (a UDP socket connected to it; no
/// packet is sent).
pub fn source_toward(peer: &NodePeer) -> Option<IpAddr> {
    let (bind, target): (SocketAddr, SocketAddr) = match peer.address {
        IpAddr::V4(a) => (
            SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
            SocketAddr::from((a, 179)),
        ),
        IpAddr::V6(a) => (
            SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
            SocketAddr::V6(SocketAddrV6::new(
                a,
                179,
                0,
                if a.is_unicast_link_local() {
                    peer.ifindex.unwrap_or(0)
                } else {
                    0
                },
            )),
        ),
    };
    let socket = UdpSocket::bind(bind).ok()?;
    socket.connect(target).ok()?;
    socket.local_addr().ok().map(|a| a.ip())
}

/// The pod's addresses for next hops: the IPv4 source toward an IPv4 peer, and
/// a global IPv6 address (the source toward an IPv6 peer when global, else one
/// on the interface toward the node), never one of the VIPs.
pub fn pod_addresses(peers: &[NodePeer], vips: &[IpNet]) -> PodAddresses {
    let is_vip = |a: IpAddr| vips.iter().any(|v| v.contains(&a));
    let mut pod = PodAddresses::default();
    for p in peers {
        match source_toward(p) {
            Some(IpAddr::V4(a)) if pod.v4.is_none() && !is_vip(IpAddr::V4(a)) => {
                pod.v4 = Some(a);
            }
            Some(IpAddr::V6(a)) if a.is_unicast_link_local() => pod.v6_session_link_local = true,
            Some(IpAddr::V6(a)) if pod.v6.is_none() && !is_vip(IpAddr::V6(a)) => {
                pod.v6 = Some(a);
            }
            _ => {}
        }
    }
    if pod.v6.is_none() {
        let ifname = peers.iter().find_map(|p| p.ifname.as_deref());
        let text = std::fs::read_to_string("/proc/net/if_inet6").unwrap_or_default();
        pod.v6 = global_v6(&text, ifname)
            .into_iter()
            .find(|a| !is_vip(IpAddr::V6(*a)));
    }
    pod
}

/// The usable global IPv6 addresses in `/proc/net/if_inet6` text, on `ifname`
/// when given, else on any interface but `lo`.
pub fn global_v6(if_inet6: &str, ifname: Option<&str>) -> Vec<Ipv6Addr> {
    const TENTATIVE: u32 = 0x40;
    const DADFAILED: u32 = 0x08;
    const DEPRECATED: u32 = 0x20;
    if_inet6
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let [hex, _index, _len, scope, flags, name] = f[..] else {
                return None;
            };
            let wanted = match ifname {
                Some(i) => name == i,
                None => name != "lo",
            };
            let flags = u32::from_str_radix(flags, 16).ok()?;
            if !wanted || scope != "00" || flags & (TENTATIVE | DADFAILED | DEPRECATED) != 0 {
                return None;
            }
            u128::from_str_radix(hex, 16).ok().map(Ipv6Addr::from)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(a: &str) -> NodePeer {
        NodePeer {
            address: a.parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            ifname: Some("eth0".into()),
            ifindex: Some(2),
            via: "default gateway via eth0".into(),
        }
    }

    fn nets(v: &[&str]) -> Vec<IpNet> {
        v.iter().filter_map(|s| s.parse().ok()).collect()
    }

    #[test]
    fn dual_stack_each_family_over_its_own_session() {
        let pod = PodAddresses {
            v4: Some(Ipv4Addr::new(10, 0, 0, 2)),
            v6: Some("fd00::2".parse().unwrap_or(Ipv6Addr::UNSPECIFIED)),
            v6_session_link_local: false,
        };
        let (plans, warnings) = plan(
            &[peer("10.0.0.1"), peer("fd00::1")],
            pod,
            &nets(&["198.51.100.1/32", "2001:db8::1/128"]),
        );
        assert!(warnings.is_empty());
        assert_eq!(plans[0].families, vec![AfiSafi::IPV4_UNICAST]);
        assert_eq!(plans[1].families, vec![AfiSafi::IPV6_UNICAST]);
        assert_eq!(plans[0].next_hop_v6, None);
        assert_eq!(plans[1].next_hop_v6, None, "the session address serves");
    }

    #[test]
    fn v6_over_v4_only_with_a_global_next_hop() {
        let vips = nets(&["198.51.100.1/32", "2001:db8::/64"]);
        let mut pod = PodAddresses {
            v4: Some(Ipv4Addr::new(10, 0, 0, 2)),
            ..Default::default()
        };
        let (plans, warnings) = plan(&[peer("10.0.0.1")], pod, &vips);
        assert_eq!(plans[0].families, vec![AfiSafi::IPV4_UNICAST]);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("IPv6 VIPs are not announced"));

        let global: Ipv6Addr = "fd00::2".parse().unwrap_or(Ipv6Addr::UNSPECIFIED);
        pod.v6 = Some(global);
        let (plans, warnings) = plan(&[peer("10.0.0.1")], pod, &vips);
        assert!(warnings.is_empty());
        assert_eq!(
            plans[0].families,
            vec![AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST]
        );
        assert_eq!(plans[0].next_hop_v6, Some(global));
        assert!(plans[0].carries(&vips[1]));
    }

    #[test]
    fn link_local_v6_session_gets_the_global_next_hop() {
        let global: Ipv6Addr = "fd00::2".parse().unwrap_or(Ipv6Addr::UNSPECIFIED);
        let pod = PodAddresses {
            v4: None,
            v6: Some(global),
            v6_session_link_local: true,
        };
        let (plans, warnings) = plan(&[peer("fe80::1")], pod, &nets(&["2001:db8::1/128"]));
        assert!(warnings.is_empty());
        assert!(plans[0].peer.is_link_local());
        assert_eq!(plans[0].next_hop_v6, Some(global));
        assert_eq!(plans[0].families, vec![AfiSafi::IPV6_UNICAST]);

        let pod = PodAddresses { v6: None, ..pod };
        let (plans, warnings) = plan(&[peer("fe80::1")], pod, &nets(&["2001:db8::1/128"]));
        assert_eq!(plans[0].next_hop_v6, None);
        assert!(
            warnings[0].contains("link-local session address as next hop"),
            "{warnings:?}"
        );
    }

    #[test]
    fn v4_vips_on_a_v6_only_pod_are_skipped_with_a_warning() {
        let pod = PodAddresses {
            v6: Some("fd00::2".parse().unwrap_or(Ipv6Addr::UNSPECIFIED)),
            ..Default::default()
        };
        let (plans, warnings) = plan(&[peer("fd00::1")], pod, &nets(&["198.51.100.1/32"]));
        assert_eq!(plans[0].families, vec![AfiSafi::IPV6_UNICAST]);
        assert!(warnings[0].contains("IPv4 VIPs are not announced"));
    }

    #[test]
    fn global_v6_from_proc() {
        let text = "\
fd000000000000000000000000000002 02 40 00 80     eth0
fe800000000000000000000000000002 02 40 20 80     eth0
20010db8000000000000000000000001 01 80 00 80       lo
fd000000000000000000000000000003 02 40 00 c0     eth0
fd000000000000000000000000000004 03 40 00 80     eth1
";
        let want = |s: &str| s.parse::<Ipv6Addr>().unwrap_or(Ipv6Addr::UNSPECIFIED);
        assert_eq!(global_v6(text, Some("eth0")), vec![want("fd00::2")]);
        assert_eq!(
            global_v6(text, None),
            vec![want("fd00::2"), want("fd00::4")],
            "not lo, not tentative (0x40)"
        );
    }
}
