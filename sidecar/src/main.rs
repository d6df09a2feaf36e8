//! podpeer-sidecar: announces a network function's VIPs to its node over BGP.
//!
//! The daemon itself arrives with issue [3/8]; until then the binary only reports
//! the version of the BGP library it is built on.

fn main() {
    println!(
        "podpeer-sidecar {} (bgp-core {}): not yet functional",
        env!("CARGO_PKG_VERSION"),
        bgp_core::VERSION
    );
}
