//! podpeer-sidecar: runs in a network-function pod and announces the pod's
//! VIPs to its node over BGP, each gated by an optional health check.
//!
//! - [`config`]: flags, `PODPEER_*` environment and YAML file, merged and
//!   validated;
//! - [`node`]: finding the node (default gateways) and planning the sessions;
//! - [`check`]: health checks and the rise/fall state machine;
//! - [`daemon`]: the speaker, the VIP driver and the shutdown drain;
//! - [`http`]: `/healthz`, `/readyz`, `/metrics`, `/status`;
//! - [`status`]: the status document and `podpeer-sidecar status`.

#![warn(missing_docs)]

pub mod check;
pub mod config;
pub mod daemon;
pub mod http;
pub mod metrics;
pub mod node;
pub mod status;
