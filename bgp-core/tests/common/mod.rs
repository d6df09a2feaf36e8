//! Helpers shared by the session tests: waiting for a condition, and looking up
//! a neighbor or a route through the Speaker API.

#![allow(dead_code, clippy::unwrap_used)]

use std::future::Future;
use std::net::IpAddr;
use std::time::Duration;

use bgp_core::speaker::{NeighborStatus, RibEntry, SpeakerHandle};
use ipnet::IpNet;

/// How long any condition may take before the test fails: a guard, not a measure.
pub const GUARD: Duration = Duration::from_secs(15);

/// Polls `f` until it returns `Some`, for at most [`GUARD`].
pub async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + GUARD;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The status of the neighbor at `peer`.
pub async fn status(s: &SpeakerHandle, peer: IpAddr) -> Option<NeighborStatus> {
    s.neighbors()
        .await
        .unwrap()
        .into_iter()
        .find(|n| n.address == peer)
}

/// The Loc-RIB entry of `prefix`.
pub async fn route(s: &SpeakerHandle, prefix: &str) -> Option<RibEntry> {
    let p: IpNet = prefix.parse().unwrap();
    s.routes()
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.prefix == p)
}
