//! podpeer-node: the per-node BGP speaker for pods.
//!
//! The daemon itself arrives with issue [3/8]; until then the binary only reports
//! the version of the BGP library it is built on.

fn main() {
    println!(
        "podpeer-node {} (bgp-core {}): not yet functional",
        env!("CARGO_PKG_VERSION"),
        bgp_core::VERSION
    );
}
