//! The tc-eBPF router (`router.c`) and the aya loader that attaches it.
//!
//! Issue [6/8] brings the program; this crate holds its place in the workspace.
