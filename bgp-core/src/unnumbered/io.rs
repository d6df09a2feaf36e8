//! What discovery needs from the kernel: interface indexes, a raw ICMPv6
//! socket on one interface for Router Advertisements, the neighbor table and
//! the link's state. Everything is opened on the calling thread, so in its
//! network namespace.

use std::io::{self, IoSliceMut};
use std::net::{Ipv6Addr, SocketAddrV6};
use std::os::fd::AsRawFd;

use futures::channel::mpsc::UnboundedReceiver;
use futures::{StreamExt, TryStreamExt};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{LinkFlags, LinkMessage};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourState,
};
use nix::sys::socket::{ControlMessageOwned, MsgFlags, SockaddrIn6, recvmsg, setsockopt, sockopt};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use super::ra::ND_HOP_LIMIT;

/// ff02::1, every node on the link.
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// The index of the interface called `name`.
pub fn if_index(name: &str) -> io::Result<u32> {
    nix::net::if_::if_nametoindex(name).map_err(io::Error::from)
}

/// A packet read from the raw socket.
pub(crate) struct Received {
    pub(crate) source: Ipv6Addr,
    pub(crate) hop_limit: Option<u8>,
    pub(crate) icmp: Vec<u8>,
}

/// A raw ICMPv6 socket bound to one interface: sends our advertisements to
/// all nodes with hop limit 255 and reads the ICMPv6 messages that arrive.
pub(crate) struct RaSocket {
    fd: AsyncFd<Socket>,
    ifindex: u32,
}

impl RaSocket {
    pub(crate) fn open(interface: &str, ifindex: u32) -> io::Result<Self> {
        let s = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))?;
        s.bind_device(Some(interface.as_bytes()))?;
        s.set_multicast_if_v6(ifindex)?;
        s.set_multicast_hops_v6(u32::from(ND_HOP_LIMIT))?;
        s.set_unicast_hops_v6(u32::from(ND_HOP_LIMIT))?;
        // Our own advertisements are no news.
        s.set_multicast_loop_v6(false)?;
        setsockopt(&s, sockopt::Ipv6RecvHopLimit, &true)?;
        s.set_nonblocking(true)?;
        // `AsyncFd::new` is deprecated because a `T: AsRawFd` need not own its
        // descriptor; a `Socket` does, for as long as the `AsyncFd` holds it.
        #[allow(deprecated)]
        let fd = AsyncFd::new(s)?;
        Ok(Self { fd, ifindex })
    }

    pub(crate) async fn send(&self, icmp: &[u8]) -> io::Result<()> {
        let to = SocketAddrV6::new(ALL_NODES, 0, 0, self.ifindex).into();
        self.fd
            .async_io(Interest::WRITABLE, |s| s.send_to(icmp, &to))
            .await
            .map(drop)
    }

    pub(crate) async fn recv(&self) -> io::Result<Received> {
        self.fd
            .async_io(Interest::READABLE, |s| {
                let mut buf = vec![0u8; 2048];
                let mut cmsg = nix::cmsg_space!(nix::libc::c_int);
                let mut iov = [IoSliceMut::new(&mut buf)];
                let msg = recvmsg::<SockaddrIn6>(
                    s.as_raw_fd(),
                    &mut iov,
                    Some(&mut cmsg),
                    MsgFlags::empty(),
                )
                .map_err(io::Error::from)?;
                let hop_limit = msg.cmsgs().ok().and_then(|mut c| {
                    c.find_map(|c| match c {
                        ControlMessageOwned::Ipv6HopLimit(h) => u8::try_from(h).ok(),
                        _ => None,
                    })
                });
                let source = msg.address.map(|a| a.ip());
                let len = msg.bytes;
                buf.truncate(len);
                Ok((source, hop_limit, buf))
            })
            .await
            .and_then(|(source, hop_limit, icmp)| {
                let source = source.ok_or_else(|| io::Error::other("no source address"))?;
                Ok(Received {
                    source,
                    hop_limit,
                    icmp,
                })
            })
    }
}

/// A router in the kernel's neighbor table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Router {
    pub(crate) address: Ipv6Addr,
    pub(crate) mac: Option<[u8; 6]>,
}

/// The IPv6 routers the kernel currently knows as reachable on `ifindex`:
/// entries with the router flag (set by their advertisements, or by neighbor
/// advertisements with the R bit) that are reachable, being confirmed, or
/// permanent. Stale entries linger after a peer is gone, so they do not count.
pub(crate) async fn routers(ifindex: u32) -> io::Result<Vec<Router>> {
    let (conn, handle, _) = rtnetlink::new_connection()?;
    let conn = tokio::spawn(conn);
    let result = async {
        let mut dump = handle
            .neighbours()
            .get()
            .set_address_family(netlink_packet_route::AddressFamily::Inet6)
            .execute();
        let mut out = Vec::new();
        while let Some(m) = dump.try_next().await.map_err(io::Error::other)? {
            let h = &m.header;
            let live = matches!(
                h.state,
                NeighbourState::Reachable
                    | NeighbourState::Delay
                    | NeighbourState::Probe
                    | NeighbourState::Permanent
            );
            if h.ifindex != ifindex || !live || !h.flags.contains(NeighbourFlags::Router) {
                continue;
            }
            let mut address = None;
            let mut mac = None;
            for a in &m.attributes {
                match a {
                    NeighbourAttribute::Destination(NeighbourAddress::Inet6(ip)) => {
                        address = Some(*ip)
                    }
                    NeighbourAttribute::LinkLayerAddress(l) => {
                        mac = <[u8; 6]>::try_from(&l[..]).ok()
                    }
                    _ => {}
                }
            }
            if let Some(address) = address {
                out.push(Router { address, mac });
            }
        }
        Ok(out)
    }
    .await;
    conn.abort();
    result
}

/// The kernel's link events (`RTNLGRP_LINK`): whether an interface can carry
/// traffic, as it changes.
pub(crate) struct LinkEvents {
    events: UnboundedReceiver<(
        rtnetlink::packet_core::NetlinkMessage<RouteNetlinkMessage>,
        rtnetlink::sys::SocketAddr,
    )>,
    conn: tokio::task::JoinHandle<()>,
}

impl LinkEvents {
    pub(crate) fn open() -> io::Result<Self> {
        let (conn, _, events) =
            rtnetlink::new_multicast_connection(&[rtnetlink::MulticastGroup::Link])?;
        Ok(Self {
            events,
            conn: tokio::spawn(conn),
        })
    }

    /// The next news about interface `ifindex`: `Some(true)` when it is up
    /// and running, `Some(false)` when it is down, has no carrier or was
    /// deleted; `None` when the events ended (the socket failed).
    pub(crate) async fn next(&mut self, ifindex: u32) -> Option<bool> {
        loop {
            let (message, _) = self.events.next().await?;
            if let rtnetlink::packet_core::NetlinkPayload::InnerMessage(m) = message.payload
                && let Some(up) = link_running(&m, ifindex)
            {
                return Some(up);
            }
        }
    }
}

impl Drop for LinkEvents {
    fn drop(&mut self) {
        self.conn.abort();
    }
}

/// What a link message says about interface `ifindex`; `None` when it is
/// about another one or no link at all.
pub(crate) fn link_running(m: &RouteNetlinkMessage, ifindex: u32) -> Option<bool> {
    let running = |l: &LinkMessage| {
        l.header.flags.contains(LinkFlags::Up) && l.header.flags.contains(LinkFlags::Running)
    };
    match m {
        RouteNetlinkMessage::NewLink(l) if l.header.index == ifindex => Some(running(l)),
        RouteNetlinkMessage::DelLink(l) if l.header.index == ifindex => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(index: u32, flags: LinkFlags) -> LinkMessage {
        let mut l = LinkMessage::default();
        l.header.index = index;
        l.header.flags = flags;
        l
    }

    #[test]
    fn link_state_from_link_messages() {
        let up = LinkFlags::Up | LinkFlags::Running | LinkFlags::LowerUp;
        let new = |i, f| RouteNetlinkMessage::NewLink(link(i, f));
        assert_eq!(link_running(&new(7, up), 7), Some(true));
        assert_eq!(link_running(&new(8, up), 7), None, "another interface");
        // Administratively down, and up without carrier (the veth peer down).
        assert_eq!(link_running(&new(7, LinkFlags::empty()), 7), Some(false));
        assert_eq!(link_running(&new(7, LinkFlags::Up), 7), Some(false));
        let del = RouteNetlinkMessage::DelLink(link(7, up));
        assert_eq!(link_running(&del, 7), Some(false), "deleted");
        let addr = RouteNetlinkMessage::NewAddress(Default::default());
        assert_eq!(link_running(&addr, 7), None);
    }
}
