//! Interop and lab tests run in network namespaces the tests create and remove.
//! The sessions against FRR, BIRD and GoBGP come with issue [2/8].
