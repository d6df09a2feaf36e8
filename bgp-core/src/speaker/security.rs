//! Session security, as the speaker applies it: TCP-MD5 keys on the
//! listeners and on outgoing connections (RFC 2385), GTSM (RFC 5082), the BGP
//! role capability and the OTC route leak rules (RFC 9234).
//!
//! # TCP-MD5
//!
//! A configured neighbor's key is installed on every listener for its address
//! (`TCP_MD5SIG`) when the neighbor is added, before its task starts, so the
//! first SYN it sends is already checked; a dynamic range's key is one prefix
//! key (`TCP_MD5SIG_EXT` with `TCP_MD5SIG_FLAG_PREFIX`) for the whole range.
//! Removing the neighbor or the range removes the key. The kernel copies the
//! key into each accepted socket, and checks every segment: a peer with a
//! missing or wrong key never completes the handshake, so it never reaches the
//! speaker at all. Where a neighbor's address is also in a range, the longer
//! prefix (the neighbor's) wins. IPv4 peers are keyed as v4-mapped addresses
//! on IPv6 listeners.
//!
//! # GTSM
//!
//! An outgoing connection gets TTL (hop limit) 255 and the minimum TTL
//! `256 - hops` before it connects, so even the SYN-ACK is checked. The
//! listeners send with TTL 255 (their SYN-ACKs must pass the peer's check),
//! and an accepted connection gets its minimum right after `accept`, before the
//! session reads anything.
//!
//! The listener is shared by all neighbors. When every configured neighbor and
//! range uses GTSM, the listener itself gets the lowest of their minimums, and
//! the kernel drops a SYN from too far away before any connection exists.
//! When some do not, the listener cannot filter, and an accepted connection
//! gets its minimum only once the speaker has it: segments that arrived before
//! (the handshake, and whatever the peer sent right after it, typically its
//! OPEN) were queued unchecked; FRR has the same window. Everything after is
//! checked, so such a peer gets no further than OpenConfirm unless it sent its
//! KEEPALIVE blindly too; and it must first complete a TCP handshake from an
//! admitted address (holding the MD5 key where one is set).

use std::io;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::sync::Arc;

use ipnet::IpNet;
use tokio::net::{TcpListener, TcpStream};
use tracing::warn;

use super::config::{DynamicRange, NeighborConfig};
use super::{Neighbor, SpeakerError, SpeakerTask, canonical, sockopt};
use crate::fsm::FsmConfig;
use crate::rib::RouteAttrs;
use crate::role::{self, Ingress, Leak};
use crate::wire::Capability;

/// The speaker's listening sockets, for their TCP-MD5 keys.
#[derive(Default)]
pub(crate) struct Listeners {
    sockets: Vec<(Arc<TcpListener>, bool)>,
    /// Their minimum TTL now (0: none).
    min_ttl: u8,
}

/// The peers a key is for: one address, or a range.
fn key_target(peers: IpNet) -> (IpAddr, Option<u8>) {
    let host = peers.prefix_len() == peers.max_prefix_len();
    let addr = canonical(peers.network());
    let len = match (peers, addr) {
        // An IPv4 range written as v4-mapped IPv6.
        (IpNet::V6(p), IpAddr::V4(_)) => p.prefix_len().saturating_sub(96),
        (p, _) => p.prefix_len(),
    };
    (addr, (!host).then_some(len))
}

impl Listeners {
    /// Adds a listener (IPv6 when bound to an IPv6 address), sending with TTL
    /// (hop limit) 255: the SYN-ACK to a peer that connects comes from the
    /// listener, before there is a connection to set anything on, and a GTSM
    /// peer drops it unless it arrives with 255 (less its hops). Accepted
    /// connections inherit it; it harms nobody else.
    pub(crate) fn push(&mut self, listener: Arc<TcpListener>, v6: bool) -> io::Result<()> {
        let s = socket2::SockRef::from(&*listener);
        s.set_ttl(255)?;
        if v6 {
            s.set_unicast_hops_v6(255)?;
        }
        self.sockets.push((listener, v6));
        Ok(())
    }

    /// The listeners that may see connections from `peer`.
    fn for_peer(&self, peer: IpAddr) -> impl Iterator<Item = (&TcpListener, bool)> {
        self.sockets
            .iter()
            .filter(move |(_, v6)| *v6 || peer.is_ipv4())
            .map(|(l, v6)| (&**l, *v6))
    }

    /// Installs `key` for `peers` (a host prefix for one neighbor) on every
    /// listener that may see them.
    pub(crate) fn set_key(&self, peers: IpNet, key: &str) -> io::Result<()> {
        let (addr, len) = key_target(peers);
        for (l, v6) in self.for_peer(addr) {
            sockopt::set_md5_key(l, v6, addr, len, key.as_bytes())?;
        }
        Ok(())
    }

    /// Sets the minimum TTL of every listener (0: none).
    fn set_min_ttl(&mut self, min: u8) {
        if min == self.min_ttl {
            return;
        }
        for (l, v6) in &self.sockets {
            if let Err(e) = sockopt::set_min_ttl(&**l, *v6, min) {
                warn!("cannot set the listener's minimum TTL to {min}: {e}");
            }
        }
        self.min_ttl = min;
    }

    /// Removes the key for `peers` from every listener (logging, not failing:
    /// the neighbor or range goes anyway).
    pub(crate) fn remove_key(&self, peers: IpNet) {
        let (addr, len) = key_target(peers);
        for (l, v6) in self.for_peer(addr) {
            if let Err(e) = sockopt::set_md5_key(l, v6, addr, len, &[])
                && e.raw_os_error() != Some(libc::ENOENT)
            {
                warn!(%peers, "cannot remove the TCP-MD5 key: {e}");
            }
        }
    }
}

/// The host prefix of a neighbor's address.
pub(crate) fn host(address: IpAddr) -> IpNet {
    IpNet::from(canonical(address))
}

/// Checks a password before anything is configured with it.
pub(crate) fn check_password(config: &NeighborConfig) -> io::Result<()> {
    match &config.password {
        Some(p) if p.is_empty() || p.len() > sockopt::MAX_KEY_LEN => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "a TCP-MD5 password has 1 to {} octets, this one {}",
                sockopt::MAX_KEY_LEN,
                p.len()
            ),
        )),
        _ => Ok(()),
    }
}

/// [`check_password`] as the Speaker API reports it.
pub(crate) fn password_ok(config: &NeighborConfig) -> Result<(), SpeakerError> {
    check_password(config).map_err(|source| SpeakerError::TcpMd5 {
        peers: host(config.address),
        source,
    })
}

impl SpeakerTask {
    /// Installs a configured neighbor's key on the listeners, if it has one.
    pub(super) fn install_neighbor_key(&self, config: &NeighborConfig) -> Result<(), SpeakerError> {
        password_ok(config)?;
        let Some(key) = &config.password else {
            return Ok(());
        };
        let peers = host(config.address);
        self.listeners
            .set_key(peers, key.expose())
            .map_err(|source| SpeakerError::TcpMd5 { peers, source })
    }

    /// Removes a configured neighbor's key from the listeners.
    pub(super) fn remove_neighbor_key(&self, config: &NeighborConfig) {
        if config.password.is_some() {
            self.listeners.remove_key(host(config.address));
        }
    }

    /// A neighbor restarted with a new configuration: its old key out, the
    /// new one in (a dynamic neighbor has its range's key).
    pub(super) fn replace_neighbor_key(
        &self,
        old: &Neighbor,
        new: &NeighborConfig,
    ) -> Result<(), SpeakerError> {
        if old.dynamic_range.is_some() {
            return Ok(());
        }
        self.remove_neighbor_key(&old.config);
        self.install_neighbor_key(new)
    }

    /// Installs a range's key (its template's password) as a prefix key, or
    /// removes the key of the range it replaces when it has none.
    pub(super) fn install_range_key(&self, range: &DynamicRange) -> Result<(), SpeakerError> {
        let peers = range.prefix;
        check_password(&range.template)
            .and_then(|()| match &range.template.password {
                Some(key) => self.listeners.set_key(peers, key.expose()),
                None => {
                    self.remove_range_key(peers);
                    Ok(())
                }
            })
            .map_err(|source| SpeakerError::TcpMd5 { peers, source })
    }

    /// The listeners' minimum TTL: when every configured neighbor and every
    /// range uses GTSM, the lowest of their minimums, so that the kernel drops
    /// a SYN from too far away before any connection exists (no window at
    /// all); else none, and each accepted connection gets its own.
    pub(super) fn sync_listener_gtsm(&mut self) {
        let configured = self
            .neighbors
            .values()
            .filter(|n| n.dynamic_range.is_none())
            .map(|n| &n.config);
        let templates = self.ranges.iter().map(|r| &r.template);
        let mut min = None;
        for c in configured.chain(templates) {
            let m = c.ttl_security.map_or(0, min_ttl);
            min = Some(min.map_or(m, |v: u8| v.min(m)));
        }
        self.listeners.set_min_ttl(min.unwrap_or(0));
    }

    /// Removes a range's key, if it had one.
    pub(super) fn remove_range_key(&self, prefix: IpNet) {
        if self
            .ranges
            .iter()
            .any(|r| r.prefix == prefix && r.template.password.is_some())
        {
            self.listeners.remove_key(prefix);
        }
    }
}

/// The minimum TTL for a neighbor at most `hops` away (0 counts as 1).
fn min_ttl(hops: u8) -> u8 {
    (256 - u16::from(hops.max(1))) as u8
}

/// TTL 255 and the GTSM minimum on a socket (IPv6 when `v6`).
fn gtsm(socket: &impl AsFd, v6: bool, hops: u8) -> io::Result<()> {
    let s = socket2::SockRef::from(socket);
    s.set_ttl(255)?;
    if v6 {
        s.set_unicast_hops_v6(255)?;
    }
    sockopt::set_min_ttl(socket, v6, min_ttl(hops))
}

/// Prepares the socket of an outgoing connection to `config.address`: its
/// TCP-MD5 key and GTSM, before it connects.
pub(crate) fn before_connect(socket: &socket2::Socket, config: &NeighborConfig) -> io::Result<()> {
    let v6 = config.address.is_ipv6();
    if let Some(key) = &config.password {
        sockopt::set_md5_key(socket, v6, config.address, None, key.expose().as_bytes())?;
    }
    if let Some(hops) = config.ttl_security {
        gtsm(socket, v6, hops)?;
    }
    Ok(())
}

/// GTSM on a connection about to carry the session (accepted or ours),
/// before anything is read from it.
pub(crate) fn on_stream(stream: &TcpStream, config: &NeighborConfig) -> io::Result<()> {
    let Some(hops) = config.ttl_security else {
        return Ok(());
    };
    let v6 = stream.local_addr()?.is_ipv6();
    gtsm(stream, v6, hops)
}

/// Adds our role to the capabilities and the strict mode.
pub(crate) fn configure_fsm(fsm: &mut FsmConfig, config: &NeighborConfig) {
    if let Some(r) = config.role {
        fsm.capabilities.push(Capability::Role(r));
    }
    fsm.role_strict = config.role_strict;
}

/// Whether a configuration change touches what the session was set up with.
pub(crate) fn session_changed(old: &NeighborConfig, new: &NeighborConfig) -> bool {
    old.password != new.password
        || old.ttl_security != new.ttl_security
        || old.role != new.role
        || old.role_strict != new.role_strict
}

/// OTC on import from an external neighbor with a role: the route's OTC as
/// RFC 9234 section 5 sets it, or the leak it is.
pub(crate) fn otc_ingress(n: &Neighbor, speaker_as: u32, attrs: &mut RouteAttrs) -> Option<Leak> {
    let role = n.config.role?;
    let session = n.session.as_ref()?;
    if session.negotiated.remote_as == n.local_as(speaker_as) {
        return None;
    }
    let a = &mut attrs.attributes;
    match role::ingress(role, session.negotiated.remote_as, a.otc) {
        Ingress::Accept(otc) => {
            a.otc = otc;
            None
        }
        Ingress::Leak(leak) => Some(leak),
    }
}

/// OTC on export to an external neighbor with a role: false when the route
/// must not be sent.
pub(crate) fn otc_egress(
    config: &NeighborConfig,
    to_external: bool,
    local_as: u32,
    attrs: &mut RouteAttrs,
) -> bool {
    let Some(r) = config.role.filter(|_| to_external) else {
        return true;
    };
    match role::egress(r, local_as, attrs.attributes.otc) {
        Some(otc) => {
            attrs.attributes.otc = otc;
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_ttl_is_256_minus_hops() {
        assert_eq!(min_ttl(1), 255);
        assert_eq!(min_ttl(2), 254);
        assert_eq!(min_ttl(0), 255);
        assert_eq!(min_ttl(255), 1);
    }

    #[test]
    fn key_targets() {
        let t = |s: &str| key_target(s.parse().unwrap());
        assert_eq!(t("192.0.2.7/32"), ("192.0.2.7".parse().unwrap(), None));
        assert_eq!(t("10.1.0.0/16"), ("10.1.0.0".parse().unwrap(), Some(16)));
        assert_eq!(
            t("2001:db8::/64"),
            ("2001:db8::".parse().unwrap(), Some(64))
        );
        assert_eq!(t("2001:db8::1/128"), ("2001:db8::1".parse().unwrap(), None));
        assert_eq!(
            t("::ffff:10.1.0.0/112"),
            ("10.1.0.0".parse().unwrap(), Some(16))
        );
    }

    #[test]
    fn passwords_are_checked() {
        let mut n = NeighborConfig::new("192.0.2.1".parse().unwrap(), crate::fsm::RemoteAs::Any);
        assert!(check_password(&n).is_ok());
        n.password = Some("x".repeat(80).into());
        assert!(check_password(&n).is_ok());
        n.password = Some("x".repeat(81).into());
        assert!(check_password(&n).is_err());
        n.password = Some("".into());
        assert!(check_password(&n).is_err());
    }
}
