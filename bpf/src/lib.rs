//! The tc-eBPF router (`router.c`) and the aya loader that attaches it.
//!
//! Forwarded VIP traffic should not go through netfilter, conntrack or a
//! CNI's checks on the kernel's forward path. `router.c` (GPL-2.0, built by
//! `build.rs` with clang and embedded here) forwards it at tc ingress instead:
//! a FIB lookup with `bpf_fib_lookup`, then `bpf_redirect` (or
//! `bpf_redirect_neigh` when the next hop's MAC is not known yet); whatever it
//! does not forward reaches the kernel unchanged. [`Outcome`] lists what can
//! happen to a packet, and [`Counters`] how often each did.
//!
//! - [`Router`]: the program loaded once; attach it to interfaces by name
//!   (TCX, or a clsact filter), map an interface's lookups to another
//!   interface, read the counters, run it on a crafted packet.
//! - [`Watcher`]: keeps a router attached to a set of interface names while
//!   they are deleted and re-created (link events from netlink).
//!
//! Loading needs `CAP_BPF` and `CAP_NET_ADMIN` (root). Everything acts in the
//! network namespace of the calling thread.

pub mod counters;
pub mod router;
pub mod watcher;

pub use counters::{Counters, Outcome};
pub use router::{AttachMode, Attachment, BpfError, Hook, Router, TestRunOutput};
pub use watcher::{SharedRouter, Watcher};
