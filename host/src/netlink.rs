//! The kernel's routing state over rtnetlink.
//!
//! One [`Netlink`] per network namespace (it binds to the namespace of the
//! thread that calls [`Netlink::connect`]). Routes podpeer installs carry
//! [`RTPROT_PODPEER`] so that a restart can find, and reconcile, exactly the
//! routes an earlier run left, and never touches anyone else's.
//!
//! Route writes are batched and pipelined: [`Netlink::replace_routes`] and
//! [`Netlink::delete_routes`] pack up to [`Pipeline::batch`] requests into one
//! netlink datagram (the kernel answers each with its own acknowledgement)
//! and keep up to [`Pipeline::in_flight`] datagrams queued on the one socket.
//! The kernel handles a datagram within the `sendmsg` call and drops the
//! acknowledgements that do not fit the socket's receive buffer; the
//! connection task reads what is there before it sends the next datagram, so
//! the buffer holds the answers of about one datagram, and the batch size is
//! capped to what the buffer can hold (see [`Netlink::set_pipeline`]).

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures::StreamExt;
use ipnet::IpNet;
use netlink_packet_route::{
    AddressFamily, RouteNetlinkMessage,
    address::{AddressAttribute, AddressMessage},
    link::{InfoData, InfoKind, InfoVrf, LinkAttribute, LinkFlags, LinkInfo, LinkMessage},
    route::{
        RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteNextHop, RouteProtocol,
        RouteScope, RouteType, RouteVia,
    },
    rule::{RuleAction, RuleAttribute, RuleMessage},
};
use rtnetlink::packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST, NetlinkMessage,
    NetlinkPayload,
};
use rtnetlink::proto::ConnectionHandle;
use rtnetlink::proto::sys::{AsyncSocket, SocketAddr, protocols::NETLINK_ROUTE};

mod links;
pub use links::{Link, LinkChange, LinkSpec, PODPEER_ALIAS, Vxlan};

/// The route protocol number podpeer's routes carry (`ip route ... proto 201`;
/// unassigned in iproute2's `rt_protos`).
pub const RTPROT_PODPEER: u8 = 201;

/// The main routing table.
const RT_TABLE_MAIN: u32 = 254;

/// How long one request (or one datagram of a batch) may wait for the
/// kernel's answer. The kernel answers at once; this only bounds the wait
/// when an answer was lost (receive buffer overrun).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// The socket receive buffer asked for (the kernel doubles it and caps it
/// at `net.core.rmem_max`).
const RECEIVE_BUFFER: i32 = 1 << 20;

/// The receive buffer assumed when the kernel does not say.
const MIN_RECEIVE_BUFFER: usize = 212_992;

/// Receive buffer room one acknowledgement takes: its skb's true size,
/// measured at about 1.4 KiB on Linux 6.18, rounded up.
const ACK_ROOM: usize = 2048;

/// Bounds of the batch size the receive buffer allows.
const MIN_BATCH: usize = 16;
const MAX_BATCH: usize = 512;

// Linux errno values the code tolerates or recognizes.
const ENOENT: i32 = 2;
const ESRCH: i32 = 3;
const EEXIST: i32 = 17;
const ENODEV: i32 = 19;
const EOPNOTSUPP: i32 = 95;
const EADDRNOTAVAIL: i32 = 99;

/// Errors talking to the kernel.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// The netlink socket could not be opened.
    #[error("cannot open a netlink socket: {0}")]
    Connect(#[source] std::io::Error),
    /// The kernel refused a request.
    #[error("{what}: {message}")]
    Kernel {
        /// What was asked, e.g. `add route 10.0.0.1/32 table 100`.
        what: String,
        /// The kernel's answer (errno text).
        message: String,
    },
    /// No interface has that name.
    #[error("no interface named {0:?}")]
    NoSuchInterface(String),
    /// The kernel has no such feature (e.g. VRF devices).
    #[error("the kernel does not support {0}")]
    Unsupported(&'static str),
}

/// A default route found in the main table: the pod's way to its node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gateway {
    /// The next hop address (IPv4, or IPv6 often link-local).
    pub address: IpAddr,
    /// The outgoing interface index.
    pub ifindex: u32,
    /// The outgoing interface name.
    pub ifname: String,
}

/// One next hop of a route.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NextHop {
    /// The gateway. For an IPv4 route it may be an IPv6 address (RTA_VIA).
    pub gateway: IpAddr,
    /// The interface, when the gateway needs one (link-local) or it is known.
    pub ifindex: Option<u32>,
}

/// A route podpeer owns: one prefix in one table, one or more next hops (ECMP).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Route {
    /// The table (254 is main).
    pub table: u32,
    /// The destination.
    pub prefix: IpNet,
    /// The next hops, sorted; more than one is a multipath route.
    pub next_hops: Vec<NextHop>,
}

/// A policy routing rule (`ip rule`), used to give a table VRF-like reach on
/// kernels without VRF devices.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rule {
    /// Lower runs first.
    pub priority: u32,
    /// Match packets that arrived on this interface (`iif`).
    pub iif: Option<String>,
    /// Match packets to this destination (`to`).
    pub to: Option<IpNet>,
    /// Match packets from this source (`from`).
    pub from: Option<IpNet>,
    /// The table to look up.
    pub table: u32,
    /// IPv6 rather than IPv4 (for rules without `to`/`from`).
    pub v6: bool,
}

/// How route writes share the socket: see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pipeline {
    /// Requests packed into one netlink datagram (at least 1).
    pub batch: usize,
    /// Datagrams queued at once (at least 1).
    pub in_flight: usize,
}

impl Pipeline {
    /// The default: 128 requests a datagram, 4 datagrams queued.
    pub const DEFAULT: Pipeline = Pipeline {
        batch: 128,
        in_flight: 4,
    };
    /// One request at a time, each awaited before the next is sent.
    pub const ONE_AT_A_TIME: Pipeline = Pipeline {
        batch: 1,
        in_flight: 1,
    };
}

impl Default for Pipeline {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A connection to the kernel's routing tables (rtnetlink).
///
/// Cheap to clone: clones share the one socket and its driver task, which
/// ends when the last clone is dropped.
#[derive(Clone)]
pub struct Netlink {
    handle: ConnectionHandle<RouteNetlinkMessage>,
    pipeline: Pipeline,
    /// The largest batch the socket's receive buffer can take.
    max_batch: usize,
}

impl std::fmt::Debug for Netlink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Netlink")
            .field("pipeline", &self.pipeline)
            .field("max_batch", &self.max_batch)
            .finish_non_exhaustive()
    }
}

/// Why one request failed, before it is named.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Failure {
    /// The kernel answered with this errno.
    Errno(i32),
    /// The connection task is gone.
    Closed,
    /// No answer within [`ANSWER_TIMEOUT`].
    Timeout,
    /// The kernel answered something other than what was asked for.
    Unexpected,
    /// The request was not sent: it cannot be expressed.
    Invalid(&'static str),
}

impl Failure {
    fn named(self, what: impl Into<String>) -> NetlinkError {
        let message = match self {
            Failure::Errno(errno) => errno_text(errno),
            Failure::Closed => "the netlink connection is closed".to_owned(),
            Failure::Timeout => format!("no answer from the kernel within {ANSWER_TIMEOUT:?}"),
            Failure::Unexpected => "unexpected answer from the kernel".to_owned(),
            Failure::Invalid(why) => why.to_owned(),
        };
        NetlinkError::Kernel {
            what: what.into(),
            message,
        }
    }
}

/// The errno's text, e.g. `Network is unreachable`.
fn errno_text(errno: i32) -> String {
    let text = io::Error::from_raw_os_error(errno).to_string();
    match text.strip_suffix(&format!(" (os error {errno})")) {
        Some(short) => short.to_owned(),
        None => text,
    }
}

impl Netlink {
    /// Opens a netlink socket in the calling thread's network namespace and
    /// spawns its driver on the current tokio runtime.
    pub fn connect() -> Result<Self, NetlinkError> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| NetlinkError::Connect(io::Error::other(e)))?;
        let (mut connection, handle, _unsolicited) =
            rtnetlink::proto::new_connection::<RouteNetlinkMessage>(NETLINK_ROUTE)
                .map_err(NetlinkError::Connect)?;
        // Success acknowledgements and dump ends come to the requester: a
        // batch maps its answers to its requests by their order.
        connection.set_forward_ack(true);
        connection.set_forward_done(true);
        let socket = connection.socket_mut().socket_mut();
        // A larger buffer is a margin, not a requirement (see the module doc).
        if let Err(e) = socket.set_rx_buf_sz(RECEIVE_BUFFER) {
            tracing::debug!("netlink: cannot enlarge the receive buffer: {e}");
        }
        // Error answers need not echo the whole request back.
        if let Err(e) = socket.set_cap_ack(true) {
            tracing::debug!("netlink: cannot cap acknowledgements: {e}");
        }
        // What the kernel granted (already doubled), for the batch limit.
        let receive_buffer = socket.get_rx_buf_sz().unwrap_or(MIN_RECEIVE_BUFFER);
        let max_batch = (receive_buffer / (2 * ACK_ROOM)).clamp(MIN_BATCH, MAX_BATCH);
        runtime.spawn(connection);
        let mut netlink = Netlink {
            handle,
            pipeline: Pipeline::DEFAULT,
            max_batch,
        };
        netlink.set_pipeline(Pipeline::DEFAULT);
        Ok(netlink)
    }

    /// How route writes are batched and pipelined (as in effect, after
    /// the limits of [`Netlink::set_pipeline`]).
    pub fn pipeline(&self) -> Pipeline {
        self.pipeline
    }

    /// Changes how route writes are batched and pipelined.
    /// [`Pipeline::ONE_AT_A_TIME`] awaits each request.
    ///
    /// Values below 1 count as 1. The batch is also capped by the socket's
    /// receive buffer, which must hold every acknowledgement of a datagram
    /// (the kernel drops those that do not fit): about 2 KiB each, room for
    /// two datagrams. That is 512 requests with a 2 MiB buffer, 104 with the
    /// usual `net.core.rmem_max` of 208 KiB.
    pub fn set_pipeline(&mut self, pipeline: Pipeline) {
        self.pipeline = Pipeline {
            batch: pipeline.batch.clamp(1, self.max_batch),
            in_flight: pipeline.in_flight.max(1),
        };
    }

    /// The default routes of the main table, IPv4 first, lowest metric first.
    ///
    /// A multipath default route gives one [`Gateway`] per next hop, in the
    /// kernel's order. Routes without a gateway (a device route) are skipped.
    pub async fn default_gateways(&self) -> Result<Vec<Gateway>, NetlinkError> {
        let mut found: Vec<(bool, u32, IpAddr, u32)> = Vec::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let routes = self
                .dump_routes(family)
                .await
                .map_err(|f| f.named("list routes"))?;
            for route in routes {
                if route.header.destination_prefix_length != 0
                    || route.header.kind != RouteType::Unicast
                    || route_table(&route) != RT_TABLE_MAIN
                {
                    continue;
                }
                let metric = route
                    .attributes
                    .iter()
                    .find_map(|a| match a {
                        RouteAttribute::Priority(p) => Some(*p),
                        _ => None,
                    })
                    .unwrap_or(0);
                let v6 = family == AddressFamily::Inet6;
                for hop in route_next_hops(&route) {
                    if let Some(ifindex) = hop.ifindex {
                        found.push((v6, metric, hop.gateway, ifindex));
                    }
                }
            }
        }
        // Stable: equal metrics keep the kernel's order.
        found.sort_by_key(|&(v6, metric, _, _)| (v6, metric));
        let mut names: HashMap<u32, String> = HashMap::new();
        let mut gateways = Vec::with_capacity(found.len());
        for (_, _, address, ifindex) in found {
            let ifname = match names.get(&ifindex) {
                Some(name) => name.clone(),
                None => {
                    let name = self.link_name(ifindex).await?;
                    names.insert(ifindex, name.clone());
                    name
                }
            };
            gateways.push(Gateway {
                address,
                ifindex,
                ifname,
            });
        }
        Ok(gateways)
    }

    /// The index of the interface `name`.
    pub async fn link_index(&self, name: &str) -> Result<u32, NetlinkError> {
        Ok(self.link_by_name(name).await?.header.index)
    }

    /// The name of the interface with index `ifindex` (an addition to the
    /// agreed interface).
    pub async fn link_name(&self, ifindex: u32) -> Result<String, NetlinkError> {
        let mut message = LinkMessage::default();
        message.header.index = ifindex;
        let what = || format!("get link {ifindex}");
        let answers = self
            .exchange(RouteNetlinkMessage::GetLink(message), NLM_F_REQUEST)
            .await
            .map_err(|f| f.named(what()))?;
        answers
            .iter()
            .find_map(|a| match a {
                RouteNetlinkMessage::NewLink(link) => link_ifname(link),
                _ => None,
            })
            .ok_or_else(|| Failure::Unexpected.named(what()))
    }

    /// The addresses on the interface with index `ifindex`, both families
    /// (an addition to the agreed interface; e.g. to find the pod's own
    /// address toward its gateway).
    pub async fn addresses(&self, ifindex: u32) -> Result<Vec<IpNet>, NetlinkError> {
        let answers = self
            .exchange(
                RouteNetlinkMessage::GetAddress(AddressMessage::default()),
                NLM_F_REQUEST | NLM_F_DUMP,
            )
            .await
            .map_err(|f| f.named("list addresses"))?;
        let mut addresses = Vec::new();
        for answer in answers {
            let RouteNetlinkMessage::NewAddress(address) = answer else {
                continue;
            };
            if address.header.index != ifindex {
                continue;
            }
            // IFA_LOCAL is the interface's own address (IFA_ADDRESS is the
            // peer's on point-to-point links); IPv6 only sends IFA_ADDRESS.
            let local = address.attributes.iter().find_map(|a| match a {
                AddressAttribute::Local(ip) => Some(*ip),
                _ => None,
            });
            let any = address.attributes.iter().find_map(|a| match a {
                AddressAttribute::Address(ip) => Some(*ip),
                _ => None,
            });
            if let Some(ip) = local.or(any)
                && let Ok(net) = IpNet::new(ip, address.header.prefix_len)
            {
                addresses.push(net);
            }
        }
        Ok(addresses)
    }

    /// Adds `address` to interface `ifname`: `true` when it was added, `false`
    /// when it was there already (not an error; the caller did not add it, so
    /// should not remove it either).
    pub async fn add_address(&self, ifname: &str, address: IpNet) -> Result<bool, NetlinkError> {
        let index = self.link_index(ifname).await?;
        let message = address_message(index, address);
        match self
            .exchange(
                RouteNetlinkMessage::NewAddress(message),
                NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(Failure::Errno(EEXIST)) => Ok(false),
            Err(f) => Err(f.named(format!("add address {address} to {ifname}"))),
        }
    }

    /// Removes `address` from interface `ifname` (no error when it is not there).
    pub async fn remove_address(&self, ifname: &str, address: IpNet) -> Result<(), NetlinkError> {
        let index = self.link_index(ifname).await?;
        let message = address_message(index, address);
        match self
            .exchange(
                RouteNetlinkMessage::DelAddress(message),
                NLM_F_REQUEST | NLM_F_ACK,
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(Failure::Errno(EADDRNOTAVAIL | ENOENT | ESRCH)) => Ok(()),
            Err(f) => Err(f.named(format!("remove address {address} from {ifname}"))),
        }
    }

    /// Installs or replaces routes with [`RTPROT_PODPEER`], pipelined (many
    /// requests in flight, one answer each). One result per route, in order.
    ///
    /// One next hop is sent as RTA_GATEWAY (RTA_VIA for an IPv4 route with
    /// an IPv6 gateway) plus RTA_OIF when it has an interface; several as
    /// RTA_MULTIPATH (ECMP, equal weights). A route without next hops is
    /// refused without asking the kernel. Like `ip route replace`, this
    /// replaces whatever route the table holds for the prefix at the same
    /// metric, whoever's it is (podpeer's routes carry no metric).
    pub async fn replace_routes(&self, routes: &[Route]) -> Vec<Result<(), NetlinkError>> {
        let messages = routes
            .iter()
            .map(|r| replace_message(r).map(RouteNetlinkMessage::NewRoute))
            .collect();
        let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE;
        self.batch(messages, flags)
            .await
            .into_iter()
            .zip(routes)
            .map(|(result, route)| {
                result.map_err(|f| {
                    f.named(format!(
                        "replace route {} table {}",
                        route.prefix, route.table
                    ))
                })
            })
            .collect()
    }

    /// Deletes routes (prefix and table; next hops ignored), pipelined. A route
    /// already gone is not an error.
    ///
    /// The request carries [`RTPROT_PODPEER`], so the kernel only deletes a
    /// route of ours: another protocol's route for the same prefix stays.
    pub async fn delete_routes(&self, routes: &[Route]) -> Vec<Result<(), NetlinkError>> {
        let messages = routes
            .iter()
            .map(|r| Ok(RouteNetlinkMessage::DelRoute(delete_message(r))))
            .collect();
        self.batch(messages, NLM_F_REQUEST | NLM_F_ACK)
            .await
            .into_iter()
            .zip(routes)
            .map(|(result, route)| match result {
                Ok(()) | Err(Failure::Errno(ESRCH | ENOENT)) => Ok(()),
                Err(f) => Err(f.named(format!(
                    "delete route {} table {}",
                    route.prefix, route.table
                ))),
            })
            .collect()
    }

    /// Every route with [`RTPROT_PODPEER`] in every table, both families.
    ///
    /// Sorted; each route's next hops sorted, with the interface the kernel
    /// reports for them.
    pub async fn our_routes(&self) -> Result<Vec<Route>, NetlinkError> {
        let mut ours = Vec::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let routes = self
                .dump_routes(family)
                .await
                .map_err(|f| f.named("list routes"))?;
            for route in routes {
                if route.header.protocol != RouteProtocol::from(RTPROT_PODPEER) {
                    continue;
                }
                let Some(prefix) = route_prefix(&route) else {
                    continue;
                };
                let mut next_hops = route_next_hops(&route);
                next_hops.sort();
                ours.push(Route {
                    table: route_table(&route),
                    prefix,
                    next_hops,
                });
            }
        }
        ours.sort();
        Ok(ours)
    }

    /// Adds a rule unless an identical one exists.
    ///
    /// The rule is added with protocol [`RTPROT_PODPEER`]; an identical rule
    /// of any protocol counts as existing.
    pub async fn ensure_rule(&self, rule: &Rule) -> Result<(), NetlinkError> {
        let what = || format!("add rule {}", describe_rule(rule));
        let existing = self.rules(rule_v6(rule)).await?;
        if existing.iter().any(|(r, _)| same_rule(r, rule)) {
            return Ok(());
        }
        match self
            .exchange(
                RouteNetlinkMessage::NewRule(rule_message(rule)),
                NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            )
            .await
        {
            Ok(_) | Err(Failure::Errno(EEXIST)) => Ok(()),
            Err(f) => Err(f.named(what())),
        }
    }

    /// Removes a rule (no error when it is not there).
    ///
    /// Only a rule with protocol [`RTPROT_PODPEER`] (one that
    /// [`Netlink::ensure_rule`] added) is removed.
    pub async fn remove_rule(&self, rule: &Rule) -> Result<(), NetlinkError> {
        let existing = self.rules(rule_v6(rule)).await?;
        let ours = existing
            .iter()
            .any(|(r, proto)| *proto == RTPROT_PODPEER && same_rule(r, rule));
        if !ours {
            return Ok(());
        }
        match self
            .exchange(
                RouteNetlinkMessage::DelRule(rule_message(rule)),
                NLM_F_REQUEST | NLM_F_ACK,
            )
            .await
        {
            Ok(_) | Err(Failure::Errno(ENOENT | ESRCH)) => Ok(()),
            Err(f) => Err(f.named(format!("remove rule {}", describe_rule(rule)))),
        }
    }

    /// The rules of one family, each with its protocol (an addition to the
    /// agreed interface). Rules this type cannot express (other actions than
    /// a table lookup, marks, port ranges...) are left out.
    pub async fn rules(&self, v6: bool) -> Result<Vec<(Rule, u8)>, NetlinkError> {
        let mut message = RuleMessage::default();
        message.header.family = family_of(v6);
        let answers = self
            .exchange(
                RouteNetlinkMessage::GetRule(message),
                NLM_F_REQUEST | NLM_F_DUMP,
            )
            .await
            .map_err(|f| f.named("list rules"))?;
        Ok(answers
            .iter()
            .filter_map(|a| match a {
                RouteNetlinkMessage::NewRule(rule) => parse_rule(rule),
                _ => None,
            })
            .collect())
    }

    /// Whether the kernel can create VRF devices.
    ///
    /// Asks the kernel to create a VRF device with a unique name and deletes
    /// it again; on a kernel without VRF support the creation fails and
    /// nothing changes.
    pub async fn has_vrf(&self) -> bool {
        static PROBES: AtomicU32 = AtomicU32::new(0);
        let n = PROBES.fetch_add(1, Ordering::Relaxed) % 10_000;
        let name = format!("ppv{}-{n}", std::process::id() % 10_000_000);
        let message = vrf_link_message(&name, u32::MAX - 1, false);
        match self
            .exchange(
                RouteNetlinkMessage::NewLink(message),
                NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            )
            .await
        {
            Ok(_) => {
                let mut delete = LinkMessage::default();
                delete.attributes.push(LinkAttribute::IfName(name.clone()));
                if let Err(f) = self
                    .exchange(
                        RouteNetlinkMessage::DelLink(delete),
                        NLM_F_REQUEST | NLM_F_ACK,
                    )
                    .await
                {
                    tracing::warn!("{}", f.named(format!("delete VRF probe {name}")));
                }
                true
            }
            Err(f) => {
                tracing::debug!("no VRF devices: {}", f.named("create a VRF device"));
                false
            }
        }
    }

    /// Creates (or finds) VRF device `name` bound to `table` and sets it up.
    ///
    /// An existing device of that name must be a VRF bound to `table`.
    pub async fn ensure_vrf(&self, name: &str, table: u32) -> Result<u32, NetlinkError> {
        let what = || format!("add VRF {name} table {table}");
        match self.link_by_name(name).await {
            Ok(link) => {
                match link_vrf_table(&link) {
                    None => {
                        return Err(Failure::Invalid("an interface of that name is not a VRF")
                            .named(what()));
                    }
                    Some(t) if t != table => {
                        return Err(NetlinkError::Kernel {
                            what: what(),
                            message: format!("it exists with table {t}"),
                        });
                    }
                    Some(_) => {}
                }
                let index = link.header.index;
                if !link.header.flags.contains(LinkFlags::Up) {
                    let mut up = LinkMessage::default();
                    up.header.index = index;
                    up.header.flags = LinkFlags::Up;
                    up.header.change_mask = LinkFlags::Up;
                    self.exchange(RouteNetlinkMessage::SetLink(up), NLM_F_REQUEST | NLM_F_ACK)
                        .await
                        .map_err(|f| f.named(format!("set VRF {name} up")))?;
                }
                Ok(index)
            }
            Err(NetlinkError::NoSuchInterface(_)) => {
                match self
                    .exchange(
                        RouteNetlinkMessage::NewLink(vrf_link_message(name, table, true)),
                        NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
                    )
                    .await
                {
                    Ok(_) => {}
                    Err(Failure::Errno(EOPNOTSUPP)) => {
                        return Err(NetlinkError::Unsupported("VRF devices"));
                    }
                    Err(f) => return Err(f.named(what())),
                }
                self.link_index(name).await
            }
            Err(e) => Err(e),
        }
    }

    // ---- plumbing ----

    async fn link_by_name(&self, name: &str) -> Result<LinkMessage, NetlinkError> {
        // IFNAMSIZ is 16 with the NUL: no interface has a longer name.
        if name.is_empty() || name.len() > 15 {
            return Err(NetlinkError::NoSuchInterface(name.to_owned()));
        }
        let mut message = LinkMessage::default();
        message
            .attributes
            .push(LinkAttribute::IfName(name.to_owned()));
        let answers = match self
            .exchange(RouteNetlinkMessage::GetLink(message), NLM_F_REQUEST)
            .await
        {
            Ok(answers) => answers,
            Err(Failure::Errno(ENODEV)) => {
                return Err(NetlinkError::NoSuchInterface(name.to_owned()));
            }
            Err(f) => return Err(f.named(format!("get link {name}"))),
        };
        answers
            .into_iter()
            .find_map(|a| match a {
                RouteNetlinkMessage::NewLink(link) => Some(link),
                _ => None,
            })
            .ok_or_else(|| NetlinkError::NoSuchInterface(name.to_owned()))
    }

    async fn dump_routes(&self, family: AddressFamily) -> Result<Vec<RouteMessage>, Failure> {
        let mut message = RouteMessage::default();
        message.header.address_family = family;
        let answers = self
            .exchange(
                RouteNetlinkMessage::GetRoute(message),
                NLM_F_REQUEST | NLM_F_DUMP,
            )
            .await?;
        Ok(answers
            .into_iter()
            .filter_map(|a| match a {
                RouteNetlinkMessage::NewRoute(route) => Some(route),
                _ => None,
            })
            .collect())
    }

    /// Sends one request and collects its answers: the messages of a get or
    /// dump, nothing for an acknowledged request.
    async fn exchange(
        &self,
        message: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>, Failure> {
        let mut request = NetlinkMessage::from(message);
        request.header.flags = flags;
        let mut answers = self
            .handle
            .request(request, SocketAddr::new(0, 0))
            .map_err(|_| Failure::Closed)?;
        let collect = async {
            let mut messages = Vec::new();
            while let Some(answer) = answers.next().await {
                match answer.payload {
                    NetlinkPayload::InnerMessage(m) => messages.push(m),
                    NetlinkPayload::Error(e) => match e.code {
                        Some(code) => return Err(Failure::Errno(-code.get())),
                        None => return Ok(messages),
                    },
                    NetlinkPayload::Done(_) => return Ok(messages),
                    NetlinkPayload::Overrun(_) => return Err(Failure::Unexpected),
                    _ => {}
                }
            }
            // The stream ends after the last answer of a get request.
            if messages.is_empty() && flags & NLM_F_ACK != 0 {
                Err(Failure::Closed)
            } else {
                Ok(messages)
            }
        };
        tokio::time::timeout(ANSWER_TIMEOUT, collect)
            .await
            .unwrap_or(Err(Failure::Timeout))
    }

    /// Sends acknowledged requests, batched and pipelined per
    /// [`Pipeline`]; one result per message, in order. `Err` inputs are
    /// not sent and come back as they are.
    async fn batch(
        &self,
        messages: Vec<Result<RouteNetlinkMessage, Failure>>,
        flags: u16,
    ) -> Vec<Result<(), Failure>> {
        let mut results: Vec<Result<(), Failure>> = Vec::with_capacity(messages.len());
        let mut to_send: Vec<(usize, NetlinkMessage<RouteNetlinkMessage>)> = Vec::new();
        for (i, message) in messages.into_iter().enumerate() {
            match message {
                Ok(m) => {
                    let mut request = NetlinkMessage::from(m);
                    request.header.flags = flags;
                    to_send.push((i, request));
                    results.push(Ok(()));
                }
                Err(f) => results.push(Err(f)),
            }
        }
        let mut chunks: Vec<Vec<(usize, NetlinkMessage<RouteNetlinkMessage>)>> = Vec::new();
        let mut rest = to_send.into_iter().peekable();
        while rest.peek().is_some() {
            chunks.push(rest.by_ref().take(self.pipeline.batch).collect());
        }
        let mut answered = futures::stream::iter(chunks)
            .map(|chunk| async move {
                let (indexes, requests): (Vec<usize>, Vec<_>) = chunk.into_iter().unzip();
                let outcome = self.send_datagram(requests).await;
                indexes.into_iter().zip(outcome).collect::<Vec<_>>()
            })
            .buffered(self.pipeline.in_flight);
        while let Some(chunk) = answered.next().await {
            for (i, outcome) in chunk {
                if let Some(slot) = results.get_mut(i) {
                    *slot = outcome;
                }
            }
        }
        results
    }

    /// Sends acknowledged requests in one datagram; one result each, in order.
    async fn send_datagram(
        &self,
        requests: Vec<NetlinkMessage<RouteNetlinkMessage>>,
    ) -> Vec<Result<(), Failure>> {
        let n = requests.len();
        let mut outcomes: Vec<Result<(), Failure>> = Vec::with_capacity(n);
        let mut answers = match self.handle.request_batch(requests, SocketAddr::new(0, 0)) {
            Ok(answers) => answers,
            Err(_) => return vec![Err(Failure::Closed); n],
        };
        // The kernel handles the messages of a datagram in order and
        // acknowledges each, so the i-th acknowledgement is the i-th
        // message's.
        let collect = async {
            while outcomes.len() < n {
                let Some(answer) = answers.next().await else {
                    break;
                };
                if let NetlinkPayload::Error(e) = answer.payload {
                    outcomes.push(match e.code {
                        Some(code) => Err(Failure::Errno(-code.get())),
                        None => Ok(()),
                    });
                }
            }
        };
        let missing = match tokio::time::timeout(ANSWER_TIMEOUT, collect).await {
            Ok(()) => Failure::Closed,
            Err(_) => Failure::Timeout,
        };
        while outcomes.len() < n {
            outcomes.push(Err(missing.clone()));
        }
        outcomes
    }
}

// ---- message construction and parsing (pure; unit-tested below) ----

fn family_of(v6: bool) -> AddressFamily {
    if v6 {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    }
}

fn address_message(index: u32, address: IpNet) -> AddressMessage {
    match address {
        IpNet::V4(net) => rtnetlink::AddressMessageBuilder::<std::net::Ipv4Addr>::new()
            .index(index)
            .address(net.addr(), net.prefix_len())
            .build(),
        IpNet::V6(net) => rtnetlink::AddressMessageBuilder::<std::net::Ipv6Addr>::new()
            .index(index)
            .address(net.addr(), net.prefix_len())
            .build(),
    }
}

/// The header and destination shared by replace and delete requests.
fn route_base(route: &Route) -> RouteMessage {
    let mut message = RouteMessage::default();
    message.header.address_family = family_of(matches!(route.prefix, IpNet::V6(_)));
    message.header.destination_prefix_length = route.prefix.prefix_len();
    // Tables above 255 only fit in RTA_TABLE; iproute2 then sends
    // RT_TABLE_UNSPEC in the header. RTA_TABLE wins when both are there.
    message.header.table = u8::try_from(route.table).unwrap_or(RouteHeader::RT_TABLE_UNSPEC);
    message.header.protocol = RouteProtocol::from(RTPROT_PODPEER);
    message.header.kind = RouteType::Unicast;
    message
        .attributes
        .push(RouteAttribute::Destination(RouteAddress::from(
            route.prefix.network(),
        )));
    message.attributes.push(RouteAttribute::Table(route.table));
    message
}

/// The gateway attribute of a next hop: RTA_GATEWAY in the route's own
/// family, RTA_VIA otherwise (an IPv4 route via an IPv6 gateway).
fn gateway_attribute(prefix: &IpNet, gateway: IpAddr) -> RouteAttribute {
    match (prefix, gateway) {
        (IpNet::V4(_), IpAddr::V4(_)) | (IpNet::V6(_), IpAddr::V6(_)) => {
            RouteAttribute::Gateway(RouteAddress::from(gateway))
        }
        (_, IpAddr::V6(g)) => RouteAttribute::Via(RouteVia::Inet6(g)),
        (_, IpAddr::V4(g)) => RouteAttribute::Via(RouteVia::Inet(g)),
    }
}

fn replace_message(route: &Route) -> Result<RouteMessage, Failure> {
    let mut message = route_base(route);
    message.header.scope = RouteScope::Universe;
    match route.next_hops.as_slice() {
        [] => return Err(Failure::Invalid("a route needs a next hop")),
        [hop] => {
            message
                .attributes
                .push(gateway_attribute(&route.prefix, hop.gateway));
            if let Some(ifindex) = hop.ifindex {
                message.attributes.push(RouteAttribute::Oif(ifindex));
            }
        }
        hops => {
            let hops = hops
                .iter()
                .map(|hop| {
                    let mut next = RouteNextHop::default();
                    next.interface_index = hop.ifindex.unwrap_or(0);
                    next.attributes
                        .push(gateway_attribute(&route.prefix, hop.gateway));
                    next
                })
                .collect();
            message.attributes.push(RouteAttribute::MultiPath(hops));
        }
    }
    Ok(message)
}

fn delete_message(route: &Route) -> RouteMessage {
    let mut message = route_base(route);
    // "Any scope", as iproute2 sends for a delete; the protocol set in the
    // header makes the kernel match only our routes.
    message.header.scope = RouteScope::NoWhere;
    message
}

fn route_table(route: &RouteMessage) -> u32 {
    route
        .attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(route.header.table))
}

fn route_address_ip(address: &RouteAddress) -> Option<IpAddr> {
    match address {
        RouteAddress::Inet(a) => Some(IpAddr::V4(*a)),
        RouteAddress::Inet6(a) => Some(IpAddr::V6(*a)),
        _ => None,
    }
}

fn route_prefix(route: &RouteMessage) -> Option<IpNet> {
    let len = route.header.destination_prefix_length;
    let address = route
        .attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Destination(d) => route_address_ip(d),
            _ => None,
        })
        .or(match route.header.address_family {
            AddressFamily::Inet => Some(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)),
            AddressFamily::Inet6 => Some(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)),
            _ => None,
        })?;
    IpNet::new(address, len).ok()
}

fn attribute_gateway(attributes: &[RouteAttribute]) -> Option<IpAddr> {
    attributes.iter().find_map(|a| match a {
        RouteAttribute::Gateway(g) => route_address_ip(g),
        RouteAttribute::Via(RouteVia::Inet(g)) => Some(IpAddr::V4(*g)),
        RouteAttribute::Via(RouteVia::Inet6(g)) => Some(IpAddr::V6(*g)),
        _ => None,
    })
}

/// The gateway next hops of a route, in the kernel's order; multipath
/// decoded. Next hops without a gateway are left out.
fn route_next_hops(route: &RouteMessage) -> Vec<NextHop> {
    let nonzero = |i: u32| (i != 0).then_some(i);
    if let Some(hops) = route.attributes.iter().find_map(|a| match a {
        RouteAttribute::MultiPath(hops) => Some(hops),
        _ => None,
    }) {
        return hops
            .iter()
            .filter_map(|hop| {
                Some(NextHop {
                    gateway: attribute_gateway(&hop.attributes)?,
                    ifindex: nonzero(hop.interface_index),
                })
            })
            .collect();
    }
    let Some(gateway) = attribute_gateway(&route.attributes) else {
        return Vec::new();
    };
    let ifindex = route.attributes.iter().find_map(|a| match a {
        RouteAttribute::Oif(i) => nonzero(*i),
        _ => None,
    });
    vec![NextHop { gateway, ifindex }]
}

fn link_ifname(link: &LinkMessage) -> Option<String> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(name) => Some(name.clone()),
        _ => None,
    })
}

/// The table of a VRF device; `None` when the link is not a VRF.
fn link_vrf_table(link: &LinkMessage) -> Option<u32> {
    let infos = link.attributes.iter().find_map(|a| match a {
        LinkAttribute::LinkInfo(infos) => Some(infos),
        _ => None,
    })?;
    if !infos
        .iter()
        .any(|i| matches!(i, LinkInfo::Kind(InfoKind::Vrf)))
    {
        return None;
    }
    let table = infos.iter().find_map(|i| match i {
        LinkInfo::Data(InfoData::Vrf(data)) => data.iter().find_map(|d| match d {
            InfoVrf::TableId(t) => Some(*t),
            _ => None,
        }),
        _ => None,
    });
    Some(table.unwrap_or(0))
}

/// `ip link add NAME type vrf table TABLE [up]`.
fn vrf_link_message(name: &str, table: u32, up: bool) -> LinkMessage {
    let builder = rtnetlink::LinkVrf::new(name, table);
    if up {
        builder.up().build()
    } else {
        builder.build()
    }
}

/// The family a rule belongs to: that of its addresses, else `v6`.
fn rule_v6(rule: &Rule) -> bool {
    match (rule.to, rule.from) {
        (Some(net), _) | (None, Some(net)) => matches!(net, IpNet::V6(_)),
        (None, None) => rule.v6,
    }
}

fn same_rule(a: &Rule, b: &Rule) -> bool {
    a.priority == b.priority
        && a.iif == b.iif
        && a.to == b.to
        && a.from == b.from
        && a.table == b.table
        && rule_v6(a) == rule_v6(b)
}

fn describe_rule(rule: &Rule) -> String {
    let mut text = format!("priority {}", rule.priority);
    if let Some(iif) = &rule.iif {
        text.push_str(&format!(" iif {iif}"));
    }
    if let Some(from) = rule.from {
        text.push_str(&format!(" from {from}"));
    }
    if let Some(to) = rule.to {
        text.push_str(&format!(" to {to}"));
    }
    text.push_str(&format!(" lookup {}", rule.table));
    if rule.to.is_none() && rule.from.is_none() && rule.v6 {
        text.push_str(" (IPv6)");
    }
    text
}

/// `ip rule add priority P [iif I] [from F] [to T] lookup TABLE proto 201`.
fn rule_message(rule: &Rule) -> RuleMessage {
    let mut message = RuleMessage::default();
    message.header.family = family_of(rule_v6(rule));
    message.header.action = RuleAction::ToTable;
    message.header.table = u8::try_from(rule.table).unwrap_or(RouteHeader::RT_TABLE_UNSPEC);
    message
        .attributes
        .push(RuleAttribute::Priority(rule.priority));
    message.attributes.push(RuleAttribute::Table(rule.table));
    if let Some(iif) = &rule.iif {
        message.attributes.push(RuleAttribute::Iifname(iif.clone()));
    }
    if let Some(to) = rule.to {
        message.header.dst_len = to.prefix_len();
        message
            .attributes
            .push(RuleAttribute::Destination(to.network()));
    }
    if let Some(from) = rule.from {
        message.header.src_len = from.prefix_len();
        message
            .attributes
            .push(RuleAttribute::Source(from.network()));
    }
    message
        .attributes
        .push(RuleAttribute::Protocol(RouteProtocol::from(RTPROT_PODPEER)));
    message
}

/// A dumped rule as a [`Rule`] and its protocol; `None` for rules that are
/// not a plain table lookup.
fn parse_rule(message: &RuleMessage) -> Option<(Rule, u8)> {
    if message.header.action != RuleAction::ToTable {
        return None;
    }
    let v6 = match message.header.family {
        AddressFamily::Inet => false,
        AddressFamily::Inet6 => true,
        _ => return None,
    };
    let mut rule = Rule {
        priority: 0,
        iif: None,
        to: None,
        from: None,
        table: u32::from(message.header.table),
        v6,
    };
    let mut proto = 0;
    for attribute in &message.attributes {
        match attribute {
            RuleAttribute::Priority(p) => rule.priority = *p,
            RuleAttribute::Table(t) => rule.table = *t,
            RuleAttribute::Iifname(i) => rule.iif = Some(i.clone()),
            RuleAttribute::Destination(a) => {
                rule.to = IpNet::new(*a, message.header.dst_len).ok();
            }
            RuleAttribute::Source(a) => {
                rule.from = IpNet::new(*a, message.header.src_len).ok();
            }
            RuleAttribute::Protocol(p) => proto = u8::from(*p),
            // Anything else narrows the match beyond what a Rule says.
            RuleAttribute::Oifname(_)
            | RuleAttribute::FwMark(_)
            | RuleAttribute::FwMask(_)
            | RuleAttribute::Goto(_)
            | RuleAttribute::UidRange(_)
            | RuleAttribute::IpProtocol(_)
            | RuleAttribute::SourcePortRange(_)
            | RuleAttribute::DestinationPortRange(_)
            | RuleAttribute::TunId(_)
            | RuleAttribute::L3MDev(true) => return None,
            _ => {}
        }
    }
    Some((rule, proto))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    pub(super) fn emit_and_parse(message: RouteNetlinkMessage) -> RouteNetlinkMessage {
        let mut request = NetlinkMessage::from(message);
        request.header.flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
        request.finalize();
        let mut bytes = vec![0u8; request.buffer_len()];
        request.serialize(&mut bytes);
        let parsed = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&bytes).unwrap();
        match parsed.payload {
            NetlinkPayload::InnerMessage(m) => m,
            other => panic!("not a message: {other:?}"),
        }
    }

    #[test]
    fn vrf_request_names_kind_table_and_up() {
        let message = vrf_link_message("vips", 100, true);
        assert!(message.header.flags.contains(LinkFlags::Up));
        assert!(message.header.change_mask.contains(LinkFlags::Up));
        // Through the wire format and back, as the kernel would read it.
        let RouteNetlinkMessage::NewLink(parsed) =
            emit_and_parse(RouteNetlinkMessage::NewLink(message))
        else {
            panic!("not a link message");
        };
        assert_eq!(link_ifname(&parsed).as_deref(), Some("vips"));
        assert_eq!(link_vrf_table(&parsed), Some(100));
        let infos = parsed
            .attributes
            .iter()
            .find_map(|a| match a {
                LinkAttribute::LinkInfo(i) => Some(i.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(infos[0], LinkInfo::Kind(InfoKind::Vrf));
        assert_eq!(
            infos[1],
            LinkInfo::Data(InfoData::Vrf(vec![InfoVrf::TableId(100)]))
        );
        // The probe of has_vrf does not set the device up.
        let probe = vrf_link_message("ppv1-0", u32::MAX - 1, false);
        assert!(!probe.header.flags.contains(LinkFlags::Up));
        assert_eq!(link_vrf_table(&probe), Some(u32::MAX - 1));
    }

    #[test]
    fn link_vrf_table_is_none_for_other_kinds() {
        let mut veth = LinkMessage::default();
        veth.attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::Veth,
            )]));
        assert_eq!(link_vrf_table(&veth), None);
        assert_eq!(link_vrf_table(&LinkMessage::default()), None);
    }

    fn hop(gateway: &str, ifindex: Option<u32>) -> NextHop {
        NextHop {
            gateway: gateway.parse().unwrap(),
            ifindex,
        }
    }

    #[test]
    fn single_path_route_message() {
        let route = Route {
            table: 100,
            prefix: "198.51.100.10/32".parse().unwrap(),
            next_hops: vec![hop("192.0.2.1", Some(7))],
        };
        let m = replace_message(&route).unwrap();
        assert_eq!(m.header.address_family, AddressFamily::Inet);
        assert_eq!(m.header.destination_prefix_length, 32);
        assert_eq!(m.header.table, 100);
        assert_eq!(m.header.protocol, RouteProtocol::Other(201));
        assert_eq!(m.header.kind, RouteType::Unicast);
        assert_eq!(m.header.scope, RouteScope::Universe);
        assert!(m.attributes.contains(&RouteAttribute::Table(100)));
        assert!(m.attributes.contains(&RouteAttribute::Oif(7)));
        assert!(
            m.attributes
                .contains(&RouteAttribute::Gateway(RouteAddress::Inet(Ipv4Addr::new(
                    192, 0, 2, 1
                ))))
        );
        assert_eq!(route_prefix(&m), Some(route.prefix));
        assert_eq!(route_next_hops(&m), route.next_hops);
    }

    #[test]
    fn big_table_goes_in_rta_table_only() {
        let route = Route {
            table: 1000,
            prefix: "2001:db8:1::/48".parse().unwrap(),
            next_hops: vec![hop("fe80::1", Some(3))],
        };
        let m = replace_message(&route).unwrap();
        assert_eq!(m.header.table, RouteHeader::RT_TABLE_UNSPEC);
        assert_eq!(route_table(&m), 1000);
        assert_eq!(m.header.address_family, AddressFamily::Inet6);
    }

    #[test]
    fn ecmp_and_via_route_message_round_trips() {
        let route = Route {
            table: 100,
            prefix: "198.51.100.0/24".parse().unwrap(),
            next_hops: vec![
                hop("192.0.2.1", Some(2)),
                hop("192.0.2.2", None),
                hop("fe80::2", Some(3)),
            ],
        };
        let m = replace_message(&route).unwrap();
        let RouteNetlinkMessage::NewRoute(parsed) =
            emit_and_parse(RouteNetlinkMessage::NewRoute(m))
        else {
            panic!("not a route");
        };
        let hops = parsed
            .attributes
            .iter()
            .find_map(|a| match a {
                RouteAttribute::MultiPath(h) => Some(h.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(hops.len(), 3);
        assert_eq!(
            hops[2].attributes,
            vec![RouteAttribute::Via(RouteVia::Inet6(
                "fe80::2".parse::<Ipv6Addr>().unwrap()
            ))]
        );
        assert_eq!(route_next_hops(&parsed), route.next_hops);
    }

    #[test]
    fn route_without_next_hop_is_refused() {
        let route = Route {
            table: 100,
            prefix: "198.51.100.10/32".parse().unwrap(),
            next_hops: vec![],
        };
        assert!(replace_message(&route).is_err());
    }

    #[test]
    fn delete_message_is_ours_only() {
        let route = Route {
            table: 100,
            prefix: "198.51.100.10/32".parse().unwrap(),
            next_hops: vec![hop("192.0.2.1", None)],
        };
        let m = delete_message(&route);
        assert_eq!(m.header.protocol, RouteProtocol::Other(RTPROT_PODPEER));
        assert_eq!(m.header.scope, RouteScope::NoWhere);
        assert!(
            !m.attributes
                .iter()
                .any(|a| matches!(a, RouteAttribute::Gateway(_) | RouteAttribute::MultiPath(_)))
        );
    }

    #[test]
    fn rule_message_round_trips() {
        let rule = Rule {
            priority: 1000,
            iif: Some("eth1".into()),
            to: Some("198.51.100.0/24".parse().unwrap()),
            from: None,
            table: 300,
            v6: false,
        };
        let RouteNetlinkMessage::NewRule(parsed) =
            emit_and_parse(RouteNetlinkMessage::NewRule(rule_message(&rule)))
        else {
            panic!("not a rule");
        };
        assert_eq!(parsed.header.table, RouteHeader::RT_TABLE_UNSPEC);
        assert_eq!(parse_rule(&parsed), Some((rule.clone(), RTPROT_PODPEER)));
        // v6 follows the addresses when there are any.
        let v6 = Rule {
            to: Some("2001:db8::/32".parse().unwrap()),
            ..rule.clone()
        };
        assert!(rule_v6(&v6));
        assert!(same_rule(
            &v6,
            &Rule {
                v6: true,
                ..v6.clone()
            }
        ));
    }

    #[test]
    fn errno_text_is_short() {
        assert_eq!(errno_text(101), "Network is unreachable");
    }
}
