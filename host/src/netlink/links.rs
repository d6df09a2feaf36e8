//! Network devices: list them, create bridges, VXLAN devices, veth pairs
//! and VRFs, enslave them, set MTU and state, and delete them.
//!
//! Devices podpeer creates carry the interface alias [`PODPEER_ALIAS`]
//! (`ip link show` prints it as `alias podpeer`); [`Netlink::delete_link`]
//! deletes only such devices, so a device someone else made is never
//! removed. The kernel ignores an alias in a creation request, so
//! [`Netlink::create_link`] sets it right after creating the device (and
//! deletes the device again when that fails).

use std::net::IpAddr;

use netlink_packet_route::{
    RouteNetlinkMessage,
    link::{
        InfoData, InfoKind, InfoVeth, InfoVrf, InfoVxlan, LinkAttribute, LinkFlags, LinkInfo,
        LinkMessage,
    },
};
use rtnetlink::packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST};

use super::{ENODEV, EOPNOTSUPP, Failure, Netlink, NetlinkError, link_ifname};

/// The interface alias that marks a device as podpeer's.
pub const PODPEER_ALIAS: &str = "podpeer";

/// What kind of device to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkSpec {
    /// A bridge (`type bridge`).
    Bridge,
    /// A VXLAN device (`type vxlan id VNI [local ADDR] dstport PORT [no]learning`).
    Vxlan(Vxlan),
    /// A veth pair; the peer end gets this name (and the same mark and MTU).
    Veth {
        /// The name of the other end.
        peer: String,
    },
    /// A VRF device bound to a routing table (`type vrf table T`).
    Vrf {
        /// The VRF's table.
        table: u32,
    },
}

/// The settings of a VXLAN device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vxlan {
    /// The VXLAN network identifier.
    pub vni: u32,
    /// The local tunnel address (`local`), if any.
    pub local: Option<IpAddr>,
    /// The UDP destination port (4789 is the IANA port).
    pub port: u16,
    /// Whether the device learns remote MACs from received packets.
    pub learning: bool,
}

/// A network device as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The interface index.
    pub index: u32,
    /// The interface name.
    pub name: String,
    /// The kind (`bridge`, `vxlan`, `veth`, `vrf`...), `None` for plain devices.
    pub kind: Option<String>,
    /// The MTU.
    pub mtu: Option<u32>,
    /// Administratively up.
    pub up: bool,
    /// The index of the device this one is enslaved to (bridge or VRF).
    pub master: Option<u32>,
    /// The interface alias.
    pub alias: Option<String>,
    /// The VXLAN settings, for a VXLAN device.
    pub vxlan: Option<Vxlan>,
    /// The table, for a VRF device.
    pub vrf_table: Option<u32>,
}

impl Link {
    /// Whether podpeer created this device (it carries [`PODPEER_ALIAS`]).
    pub fn is_ours(&self) -> bool {
        self.alias.as_deref() == Some(PODPEER_ALIAS)
    }
}

impl Netlink {
    /// Every network device of the namespace, by index.
    pub async fn links(&self) -> Result<Vec<Link>, NetlinkError> {
        let answers = self
            .exchange(
                RouteNetlinkMessage::GetLink(LinkMessage::default()),
                NLM_F_REQUEST | NLM_F_DUMP,
            )
            .await
            .map_err(|f| f.named("list links"))?;
        let mut links: Vec<Link> = answers
            .iter()
            .filter_map(|a| match a {
                RouteNetlinkMessage::NewLink(link) => parse_link(link),
                _ => None,
            })
            .collect();
        links.sort_by_key(|l| l.index);
        Ok(links)
    }

    /// The device named `name`, `None` when there is none.
    pub async fn link(&self, name: &str) -> Result<Option<Link>, NetlinkError> {
        match self.link_by_name(name).await {
            Ok(message) => Ok(parse_link(&message)),
            Err(NetlinkError::NoSuchInterface(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates device `name` (down) of kind `spec` with `mtu` (kernel
    /// default when `None`), marks it (and a veth's peer) as podpeer's and
    /// returns its index. Fails when a device of that name exists.
    pub async fn create_link(
        &self,
        name: &str,
        spec: &LinkSpec,
        mtu: Option<u32>,
    ) -> Result<u32, NetlinkError> {
        let what = || format!("create {} {name}", spec_kind(spec));
        let message = create_link_message(name, spec, mtu);
        match self
            .exchange(
                RouteNetlinkMessage::NewLink(message),
                NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            )
            .await
        {
            Ok(_) => {}
            Err(Failure::Errno(EOPNOTSUPP)) if matches!(spec, LinkSpec::Vrf { .. }) => {
                return Err(NetlinkError::Unsupported("VRF devices"));
            }
            Err(f) => return Err(f.named(what())),
        }
        let mut names = vec![name];
        if let LinkSpec::Veth { peer } = spec {
            names.push(peer);
        }
        for n in names {
            let marked = async {
                let index = self.link_index(n).await?;
                self.exchange(
                    RouteNetlinkMessage::SetLink(alias_message(index, PODPEER_ALIAS)),
                    NLM_F_REQUEST | NLM_F_ACK,
                )
                .await
                .map_err(|f| f.named(format!("mark {n} as podpeer's")))
            };
            if let Err(e) = marked.await {
                // Unmarked, it would count as someone else's: take it back.
                let _ = self.exchange_delete(name).await;
                return Err(e);
            }
        }
        self.link_index(name).await
    }

    /// Changes device `name`: its MTU, its master (`Some(None)` releases
    /// it), its state. Fields left `None` are not touched.
    pub async fn set_link(&self, name: &str, change: &LinkChange) -> Result<(), NetlinkError> {
        let index = self.link_index(name).await?;
        self.exchange(
            RouteNetlinkMessage::SetLink(set_link_message(index, change)),
            NLM_F_REQUEST | NLM_F_ACK,
        )
        .await
        .map_err(|f| f.named(format!("set link {name}")))?;
        Ok(())
    }

    /// Deletes device `name` if it is podpeer's (see [`Link::is_ours`]).
    /// Returns whether it was deleted: `false` when there is no such device;
    /// an error when it exists but is not podpeer's.
    pub async fn delete_link(&self, name: &str) -> Result<bool, NetlinkError> {
        let Some(link) = self.link(name).await? else {
            return Ok(false);
        };
        if !link.is_ours() {
            return Err(Failure::Invalid("the device is not podpeer's")
                .named(format!("delete link {name}")));
        }
        match self.exchange_delete(name).await {
            Ok(()) => Ok(true),
            Err(Failure::Errno(ENODEV)) => Ok(false),
            Err(f) => Err(f.named(format!("delete link {name}"))),
        }
    }

    async fn exchange_delete(&self, name: &str) -> Result<(), Failure> {
        let mut delete = LinkMessage::default();
        delete
            .attributes
            .push(LinkAttribute::IfName(name.to_owned()));
        self.exchange(
            RouteNetlinkMessage::DelLink(delete),
            NLM_F_REQUEST | NLM_F_ACK,
        )
        .await
        .map(|_| ())
    }
}

/// A change to a device: see [`Netlink::set_link`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkChange {
    /// A new MTU.
    pub mtu: Option<u32>,
    /// A new master: `Some(Some(index))` enslaves, `Some(None)` releases.
    pub master: Option<Option<u32>>,
    /// Up or down.
    pub up: Option<bool>,
}

fn spec_kind(spec: &LinkSpec) -> &'static str {
    match spec {
        LinkSpec::Bridge => "bridge",
        LinkSpec::Vxlan(_) => "vxlan",
        LinkSpec::Veth { .. } => "veth",
        LinkSpec::Vrf { .. } => "vrf",
    }
}

// ---- message construction and parsing (pure; unit-tested below) ----

/// `ip link add NAME [mtu M] type KIND ...` (down).
pub(super) fn create_link_message(name: &str, spec: &LinkSpec, mtu: Option<u32>) -> LinkMessage {
    let mut message = match spec {
        LinkSpec::Bridge => rtnetlink::LinkBridge::new(name).build(),
        LinkSpec::Vrf { table } => rtnetlink::LinkVrf::new(name, *table).build(),
        LinkSpec::Veth { peer } => {
            let mut message = rtnetlink::LinkVeth::new(name, peer).build();
            if let Some(mtu) = mtu {
                set_peer_mtu(&mut message, mtu);
            }
            message
        }
        LinkSpec::Vxlan(vxlan) => {
            let mut builder = rtnetlink::LinkVxlan::new(name, vxlan.vni)
                .port(vxlan.port)
                .learning(vxlan.learning);
            match vxlan.local {
                Some(IpAddr::V4(a)) => builder = builder.local(a),
                Some(IpAddr::V6(a)) => builder = builder.local6(a),
                None => {}
            }
            builder.build()
        }
    };
    if let Some(mtu) = mtu {
        message.attributes.push(LinkAttribute::Mtu(mtu));
    }
    message
}

fn set_peer_mtu(message: &mut LinkMessage, mtu: u32) {
    for attribute in &mut message.attributes {
        if let LinkAttribute::LinkInfo(infos) = attribute {
            for info in infos {
                if let LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))) = info {
                    peer.attributes.push(LinkAttribute::Mtu(mtu));
                }
            }
        }
    }
}

fn alias_message(index: u32, alias: &str) -> LinkMessage {
    let mut message = LinkMessage::default();
    message.header.index = index;
    message
        .attributes
        .push(LinkAttribute::IfAlias(alias.to_owned()));
    message
}

pub(super) fn set_link_message(index: u32, change: &LinkChange) -> LinkMessage {
    let mut message = LinkMessage::default();
    message.header.index = index;
    if let Some(mtu) = change.mtu {
        message.attributes.push(LinkAttribute::Mtu(mtu));
    }
    if let Some(master) = change.master {
        message
            .attributes
            .push(LinkAttribute::Controller(master.unwrap_or(0)));
    }
    if let Some(up) = change.up {
        message.header.change_mask = LinkFlags::Up;
        if up {
            message.header.flags = LinkFlags::Up;
        }
    }
    message
}

pub(super) fn parse_link(message: &LinkMessage) -> Option<Link> {
    let name = link_ifname(message)?;
    let mut link = Link {
        index: message.header.index,
        name,
        kind: None,
        mtu: None,
        up: message.header.flags.contains(LinkFlags::Up),
        master: None,
        alias: None,
        vxlan: None,
        vrf_table: None,
    };
    for attribute in &message.attributes {
        match attribute {
            LinkAttribute::Mtu(mtu) => link.mtu = Some(*mtu),
            LinkAttribute::Controller(m) if *m != 0 => link.master = Some(*m),
            LinkAttribute::IfAlias(a) if !a.is_empty() => link.alias = Some(a.clone()),
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    match info {
                        LinkInfo::Kind(kind) => link.kind = Some(kind_name(kind)),
                        LinkInfo::Data(InfoData::Vxlan(data)) => {
                            link.vxlan = Some(parse_vxlan(data))
                        }
                        LinkInfo::Data(InfoData::Vrf(data)) => {
                            link.vrf_table = data.iter().find_map(|d| match d {
                                InfoVrf::TableId(t) => Some(*t),
                                _ => None,
                            });
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Some(link)
}

fn kind_name(kind: &InfoKind) -> String {
    match kind {
        InfoKind::Bridge => "bridge".to_owned(),
        InfoKind::Vxlan => "vxlan".to_owned(),
        InfoKind::Veth => "veth".to_owned(),
        InfoKind::Vrf => "vrf".to_owned(),
        other => other.to_string(),
    }
}

fn parse_vxlan(data: &[InfoVxlan]) -> Vxlan {
    let mut vxlan = Vxlan {
        vni: 0,
        local: None,
        port: 4789,
        learning: true,
    };
    for d in data {
        match d {
            InfoVxlan::Id(vni) => vxlan.vni = *vni,
            InfoVxlan::Local(a) => vxlan.local = Some(IpAddr::V4(*a)),
            InfoVxlan::Local6(a) => vxlan.local = Some(IpAddr::V6(*a)),
            InfoVxlan::Port(p) => vxlan.port = *p,
            InfoVxlan::Learning(l) => vxlan.learning = *l,
            _ => {}
        }
    }
    vxlan
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::netlink::tests::emit_and_parse;

    fn round_trip(message: LinkMessage) -> LinkMessage {
        match emit_and_parse(RouteNetlinkMessage::NewLink(message)) {
            RouteNetlinkMessage::NewLink(m) => m,
            other => panic!("not a link: {other:?}"),
        }
    }

    #[test]
    fn vxlan_request_has_vni_local_port_nolearning_and_mtu() {
        let spec = LinkSpec::Vxlan(Vxlan {
            vni: 200,
            local: Some("192.0.2.10".parse().unwrap()),
            port: 4789,
            learning: false,
        });
        let mut message = round_trip(create_link_message("vx.200", &spec, Some(9000)));
        // What the kernel reports back has the same shape as the request.
        message
            .attributes
            .push(LinkAttribute::IfAlias("podpeer".into()));
        let link = parse_link(&message).unwrap();
        assert_eq!(link.name, "vx.200");
        assert_eq!(link.kind.as_deref(), Some("vxlan"));
        assert_eq!(link.mtu, Some(9000));
        assert!(!link.up);
        assert!(link.is_ours());
        assert_eq!(
            link.vxlan,
            Some(Vxlan {
                vni: 200,
                local: Some("192.0.2.10".parse().unwrap()),
                port: 4789,
                learning: false
            })
        );
    }

    #[test]
    fn vrf_request_names_table_and_is_unmarked_until_aliased() {
        let message = round_trip(create_link_message(
            "vips",
            &LinkSpec::Vrf { table: 100 },
            None,
        ));
        let link = parse_link(&message).unwrap();
        assert_eq!(link.kind.as_deref(), Some("vrf"));
        assert_eq!(link.vrf_table, Some(100));
        assert_eq!(link.mtu, None);
        assert!(!link.is_ours());
    }

    #[test]
    fn veth_request_gives_the_peer_the_mtu_too() {
        let spec = LinkSpec::Veth {
            peer: "def_vips".into(),
        };
        let message = round_trip(create_link_message("vips_def", &spec, Some(1450)));
        let peer = message
            .attributes
            .iter()
            .find_map(|a| match a {
                LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
                    LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(p))) => Some(p.clone()),
                    _ => None,
                }),
                _ => None,
            })
            .unwrap();
        assert_eq!(link_ifname(&peer).as_deref(), Some("def_vips"));
        assert!(peer.attributes.contains(&LinkAttribute::Mtu(1450)));
        assert!(message.attributes.contains(&LinkAttribute::Mtu(1450)));
    }

    #[test]
    fn set_link_touches_only_what_is_asked() {
        let none = set_link_message(7, &LinkChange::default());
        assert!(none.attributes.is_empty());
        assert!(none.header.change_mask.is_empty());
        let release = set_link_message(
            7,
            &LinkChange {
                master: Some(None),
                up: Some(false),
                ..LinkChange::default()
            },
        );
        assert_eq!(release.attributes, vec![LinkAttribute::Controller(0)]);
        assert_eq!(release.header.change_mask, LinkFlags::Up);
        assert!(!release.header.flags.contains(LinkFlags::Up));
        let enslave_up = set_link_message(
            7,
            &LinkChange {
                mtu: Some(9000),
                master: Some(Some(3)),
                up: Some(true),
            },
        );
        assert!(
            enslave_up
                .attributes
                .contains(&LinkAttribute::Controller(3))
        );
        assert!(enslave_up.attributes.contains(&LinkAttribute::Mtu(9000)));
        assert!(enslave_up.header.flags.contains(LinkFlags::Up));
    }
}
