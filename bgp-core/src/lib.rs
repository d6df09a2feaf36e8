//! `bgp-core`: an embeddable BGP-4 library.
//!
//! The crate is built in layers that depend on each other one way only:
//!
//! - [`wire`]: the message codec (RFC 4271 and its extensions). It decodes bytes into
//!   typed messages under a per-session [`wire::Context`], encodes them back, packs
//!   routes into as few UPDATEs as fit, and frames a TCP byte stream. Every decode
//!   error is the NOTIFICATION to send, and RFC 7606 outcomes are explicit values.
//!
//! Sessions, the RIB, policy and the Speaker API build on it.

#![warn(missing_docs)]

pub mod fsm;
pub mod metrics;
pub mod policy;
pub mod rib;
pub mod role;
pub mod speaker;
pub mod unnumbered;
pub mod wire;

/// The version of this crate, for programs that report what they are built on.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
