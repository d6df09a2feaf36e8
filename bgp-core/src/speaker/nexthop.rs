//! Our next hop of the other address family on a session: an IPv6 address
//! for IPv6 routes over an IPv4 session, an IPv4 address for IPv4 routes over
//! an IPv6 session without the extended next hop capability.
//!
//! As FRR does, it is an address of that family on the interface that holds
//! the session's local address: the peer reaches it over the same link.
//! `NeighborConfig::next_hop_v4` / `next_hop_v6` override it.

use std::net::IpAddr;

/// An address of the other family than `local` on the interface holding
/// `local`, from the kernel's address list (the calling thread's network
/// namespace); `None` when there is none or the list cannot be read.
pub(crate) fn other_family(local: IpAddr) -> Option<IpAddr> {
    let addrs = nix::ifaddrs::getifaddrs().ok()?;
    pick(
        addrs.filter_map(|a| {
            let ip = a.address.as_ref().and_then(|s| {
                s.as_sockaddr_in()
                    .map(|v4| IpAddr::V4(v4.ip()))
                    .or_else(|| s.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
            })?;
            Some((a.interface_name, ip))
        }),
        local,
    )
}

/// The choice of [`other_family`] among (interface, address) pairs: the
/// first usable address of the other family on `local`'s interface. Usable:
/// IPv6 not link-local, loopback, multicast or unspecified (a link-local
/// next hop needs the global one beside it); IPv4 not loopback or
/// unspecified.
pub(crate) fn pick(addrs: impl Iterator<Item = (String, IpAddr)>, local: IpAddr) -> Option<IpAddr> {
    let addrs: Vec<(String, IpAddr)> = addrs.collect();
    let (interface, _) = addrs.iter().find(|(_, a)| *a == local)?;
    addrs
        .iter()
        .filter(|(i, _)| i == interface)
        .map(|(_, a)| *a)
        .find(|a| match (local, a) {
            (IpAddr::V4(_), IpAddr::V6(v6)) => {
                !(crate::unnumbered::is_link_local(*v6)
                    || v6.is_loopback()
                    || v6.is_multicast()
                    || v6.is_unspecified())
            }
            (IpAddr::V6(_), IpAddr::V4(v4)) => !(v4.is_loopback() || v4.is_unspecified()),
            _ => false,
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn list(v: &[(&str, &str)]) -> impl Iterator<Item = (String, IpAddr)> {
        v.iter()
            .map(|(i, a)| (i.to_string(), a.parse().unwrap()))
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn the_other_family_on_the_same_interface() {
        let addrs = [
            ("lo", "127.0.0.1"),
            ("lo", "::1"),
            ("eth0", "10.0.0.2"),
            ("eth1", "192.0.2.2"),
            ("eth1", "2001:db8:1::2"),
            ("eth0", "fe80::2"),
            ("eth0", "2001:db8::2"),
            ("eth0", "2001:db8::3"),
        ];
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // Not the link-local one, not eth1's: the first global on eth0.
        assert_eq!(pick(list(&addrs), ip("10.0.0.2")), Some(ip("2001:db8::2")));
        assert_eq!(pick(list(&addrs), ip("2001:db8::3")), Some(ip("10.0.0.2")));
        assert_eq!(
            pick(list(&addrs), ip("192.0.2.2")),
            Some(ip("2001:db8:1::2"))
        );
        // Only a link-local IPv6 address, or only loopback: none.
        let bare = [("eth0", "10.0.0.2"), ("eth0", "fe80::2"), ("lo", "::1")];
        assert_eq!(pick(list(&bare), ip("10.0.0.2")), None);
        assert_eq!(pick(list(&addrs), ip("127.0.0.1")), None);
        // A local address we do not have (gone meanwhile): none.
        assert_eq!(pick(list(&addrs), ip("10.9.9.9")), None);
    }
}
