//! The kernel's routing state over rtnetlink.
//!
//! One [`Netlink`] per network namespace (it binds to the namespace of the
//! thread that calls [`Netlink::connect`]). Routes podpeer installs carry
//! [`RTPROT_PODPEER`] so that a restart can find, and reconcile, exactly the
//! routes an earlier run left, and never touches anyone else's.

use std::net::IpAddr;

use ipnet::IpNet;

/// The route protocol number podpeer's routes carry (`ip route ... proto 201`;
/// unassigned in iproute2's `rt_protos`).
pub const RTPROT_PODPEER: u8 = 201;

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

/// A connection to the kernel's routing tables (rtnetlink).
pub struct Netlink {
    _private: (),
}

impl Netlink {
    /// Opens a netlink socket in the calling thread's network namespace and
    /// spawns its driver on the current tokio runtime.
    pub fn connect() -> Result<Self, NetlinkError> {
        Err(NetlinkError::Unsupported("netlink (not yet written)"))
    }

    /// The default routes of the main table, IPv4 first, lowest metric first.
    pub async fn default_gateways(&self) -> Result<Vec<Gateway>, NetlinkError> {
        Err(NetlinkError::Unsupported("netlink (not yet written)"))
    }

    /// The index of the interface `name`.
    pub async fn link_index(&self, name: &str) -> Result<u32, NetlinkError> {
        Err(NetlinkError::NoSuchInterface(name.to_owned()))
    }

    /// Adds `address` to interface `ifname` (no error when it is already there).
    pub async fn add_address(&self, ifname: &str, address: IpNet) -> Result<(), NetlinkError> {
        let _ = (ifname, address);
        Err(NetlinkError::Unsupported("netlink (not yet written)"))
    }

    /// Removes `address` from interface `ifname` (no error when it is not there).
    pub async fn remove_address(&self, ifname: &str, address: IpNet) -> Result<(), NetlinkError> {
        let _ = (ifname, address);
        Err(NetlinkError::Unsupported("netlink (not yet written)"))
    }

    /// Installs or replaces routes with [`RTPROT_PODPEER`], pipelined (many
    /// requests in flight, one answer each). One result per route, in order.
    pub async fn replace_routes(&self, routes: &[Route]) -> Vec<Result<(), NetlinkError>> {
        routes
            .iter()
            .map(|_| Err(NetlinkError::Unsupported("netlink (not yet written)")))
            .collect()
    }

    /// Deletes routes (prefix and table; next hops ignored), pipelined. A route
    /// already gone is not an error.
    pub async fn delete_routes(&self, routes: &[Route]) -> Vec<Result<(), NetlinkError>> {
        routes
            .iter()
            .map(|_| Err(NetlinkError::Unsupported("netlink (not yet written)")))
            .collect()
    }

    /// Every route with [`RTPROT_PODPEER`] in every table, both families.
    pub async fn our_routes(&self) -> Result<Vec<Route>, NetlinkError> {
        Err(NetlinkError::Unsupported("netlink (not yet written)"))
    }

    /// Adds a rule unless an identical one exists.
    pub async fn ensure_rule(&self, rule: &Rule) -> Result<(), NetlinkError> {
        let _ = rule;
        Err(NetlinkError::Unsupported("netlink (not yet written)"))
    }

    /// Removes a rule (no error when it is not there).
    pub async fn remove_rule(&self, rule: &Rule) -> Result<(), NetlinkError> {
        let _ = rule;
        Err(NetlinkError::Unsupported("netlink (not yet written)"))
    }

    /// Whether the kernel can create VRF devices.
    pub async fn has_vrf(&self) -> bool {
        false
    }

    /// Creates (or finds) VRF device `name` bound to `table` and sets it up.
    pub async fn ensure_vrf(&self, name: &str, table: u32) -> Result<u32, NetlinkError> {
        let _ = (name, table);
        Err(NetlinkError::Unsupported("VRF devices"))
    }
}
