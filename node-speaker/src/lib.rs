//! podpeer-node: the per-node BGP speaker for pods.
//!
//! Pods of configured groups peer with the node (dynamic neighbors from the
//! groups' address ranges); what they announce passes an import guard
//! (forbidden prefixes, allowed prefixes with ge/le, next hop and AS path
//! their own, a prefix limit), goes into the group's routing table as one
//! multipath route per prefix, and on to the fabric neighbors with the
//! group's communities.
//!
//! - [`config`]: the YAML file and its validation;
//! - [`guard`]: configuration to bgp-core import guards, route maps, ranges;
//! - [`fib`]: the FIB state machine (events in, kernel writes out), pure;
//! - [`frr`]: FRR mode: the FRR configuration rendered from the node's template;
//! - [`health`]: the network health check and the node's readiness;
//! - [`provision`]: the node's VRF plumbing (VXLAN, bridges, veths, rules);
//! - [`bpf`]: the tc-eBPF router on `bpfInterfaces` and the VRFs' members;
//! - [`daemon`]: the wiring, FIB loop, reconcile on start, shutdown;
//! - [`http`]: `/status`, `/peers`, `/routes`, `/metrics`, `/healthz`, `/readyz`;
//! - [`status`]: what those report, and the node's metrics;
//! - [`cli`]: `podpeer-node status|peers|routes`;
//! - [`k8s`]: the Kubernetes peer source (PodPeerings, NodeBGPConfigs).

#![warn(missing_docs)]

pub mod bpf;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod fib;
pub mod frr;
pub mod guard;
pub mod health;
pub mod http;
pub mod k8s;
pub mod provision;
pub mod status;
