//! The tc-eBPF router (`router.c`) and the aya loader that attaches it.

pub mod counters;
pub mod router;

pub use counters::{Counters, Outcome};
pub use router::{AttachMode, Attachment, BpfError, Hook, Router, TestRunOutput};
