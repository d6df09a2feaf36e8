//! What podpeer's daemons need from the host they run on.
//!
//! - [`netlink`]: the kernel's routing state over rtnetlink: default gateways,
//!   addresses, routes (ECMP, our own protocol number, batched), policy rules,
//!   VRF devices where the kernel has them.
//! - [`http`]: a small HTTP/1.1 GET client, for health checks and for the
//!   `status` commands that read a running daemon.
//! - [`text`]: the tables those `status` commands print.

pub mod http;
pub mod netlink;
pub mod text;
