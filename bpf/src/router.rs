//! The loaded program: one instance, attached at tc ingress of any number of
//! interfaces, all sharing its maps (counters and the lookup-from table).
//!
//! Every call acts in the network namespace of the calling thread: interface
//! names are resolved there and attachments are made there.

use std::collections::BTreeMap;
use std::fmt;
use std::io;

use aya::maps::{HashMap as BpfHashMap, MapError, PerCpuArray};
use aya::programs::tc::{self, NlOptions, SchedClassifierLinkId, TcAttachOptions, TcError};
use aya::programs::{LinkOrder, ProgramError, SchedClassifier, TcAttachType, TestRun};
use aya::programs::{TestRunAttrs, TestRunOptions};
use aya::{Ebpf, EbpfError};

use crate::counters::{Counters, Outcome};

/// The compiled `router.c` (built by `build.rs`), with its BTF.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/router.o"));

/// The program's name in the object, and the name its tc filters carry.
pub const PROGRAM: &str = "podpeer_router";
const COUNTERS: &str = "counters";
const LOOKUP_FROM: &str = "lookup_from";

/// What went wrong loading, attaching or reading the program.
#[derive(Debug, thiserror::Error)]
pub enum BpfError {
    /// The object could not be loaded (no permission: CAP_BPF and
    /// CAP_NET_ADMIN are needed; or the verifier refused it).
    #[error("cannot load the BPF router: {0}")]
    Load(#[source] Box<EbpfError>),
    /// The program could not be loaded into the kernel (verifier log inside).
    #[error("cannot load the BPF router program: {0}")]
    Program(#[source] Box<ProgramError>),
    /// The object lacks a program or map the loader expects.
    #[error("the BPF object has no {0}")]
    Missing(&'static str),
    /// No interface by that name (in this thread's network namespace).
    #[error("no interface named {0}")]
    NoInterface(String),
    /// Attaching failed.
    #[error("cannot attach the BPF router to {ifname}: {source}")]
    Attach {
        /// The interface.
        ifname: String,
        /// Why.
        #[source]
        source: Box<ProgramError>,
    },
    /// Detaching failed.
    #[error("cannot detach the BPF router from {ifname}: {source}")]
    Detach {
        /// The interface.
        ifname: String,
        /// Why.
        #[source]
        source: Box<ProgramError>,
    },
    /// A map could not be read or written.
    #[error("BPF map {map}: {source}")]
    Map {
        /// The map.
        map: &'static str,
        /// Why.
        #[source]
        source: Box<MapError>,
    },
    /// A test run (`BPF_PROG_TEST_RUN`) failed.
    #[error("BPF_PROG_TEST_RUN: {0}")]
    TestRun(#[source] Box<ProgramError>),
    /// Netlink (the link watcher's socket or its dump) failed.
    #[error("netlink: {0}")]
    Netlink(#[source] io::Error),
}

impl BpfError {
    fn map(map: &'static str) -> impl FnOnce(MapError) -> BpfError {
        move |e| BpfError::Map {
            map,
            source: Box::new(e),
        }
    }
}

/// How the program is hooked into tc ingress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AttachMode {
    /// TCX (a BPF link, kernel 6.6 and later), else a clsact filter.
    #[default]
    Auto,
    /// TCX only.
    Tcx,
    /// A filter on the clsact qdisc (added when missing), on any kernel.
    Clsact,
}

/// The hook an attachment uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// A TCX link: detached when the link is closed (also when the process
    /// dies) or the interface goes away.
    Tcx,
    /// A cls_bpf filter on the clsact qdisc: stays until removed; an earlier
    /// filter of ours (a crashed run) is replaced when attaching.
    Clsact,
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Hook::Tcx => "tcx",
            Hook::Clsact => "clsact",
        })
    }
}

/// One interface the program is attached to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// The interface's name.
    pub ifname: String,
    /// Its index when attached (a re-created interface gets a new one).
    pub ifindex: u32,
    /// How.
    pub hook: Hook,
}

struct Attached {
    ifindex: u32,
    hook: Hook,
    link: SchedClassifierLinkId,
}

/// What a [`Router::test_run`] returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestRunOutput {
    /// The program's verdict: `TC_ACT_REDIRECT` (7) when it forwarded,
    /// `TC_ACT_UNSPEC` (-1) when it passed the packet on to the kernel.
    pub verdict: i32,
    /// The packet as the program left it.
    pub packet: Vec<u8>,
}

/// `TC_ACT_REDIRECT`: the program forwarded the packet.
pub const TC_ACT_REDIRECT: i32 = 7;
/// `TC_ACT_UNSPEC`: the program passed the packet on unchanged.
pub const TC_ACT_UNSPEC: i32 = -1;

/// The router program, loaded once, attached wherever it is asked to be;
/// every attachment shares its maps. Dropping it detaches everything: TCX
/// links go with their file descriptors anywhere, but clsact filters are
/// removed by interface index in the dropping thread's namespace, so drop it
/// (or [`Router::detach_all`]) where it was attached.
pub struct Router {
    ebpf: Ebpf,
    mode: AttachMode,
    attached: BTreeMap<String, Attached>,
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Router")
            .field("mode", &self.mode)
            .field("attached", &self.attachments())
            .finish_non_exhaustive()
    }
}

impl Router {
    /// Loads the program (TCX where the kernel has it, else clsact).
    pub fn load() -> Result<Self, BpfError> {
        Self::load_with(AttachMode::Auto)
    }

    /// Loads the program, attaching later with `mode`.
    pub fn load_with(mode: AttachMode) -> Result<Self, BpfError> {
        let mut ebpf = Ebpf::load(OBJECT).map_err(|e| BpfError::Load(Box::new(e)))?;
        let prog: &mut SchedClassifier = ebpf
            .program_mut(PROGRAM)
            .ok_or(BpfError::Missing("program podpeer_router"))?
            .try_into()
            .map_err(|e| BpfError::Program(Box::new(e)))?;
        prog.load().map_err(|e| BpfError::Program(Box::new(e)))?;
        Ok(Self {
            ebpf,
            mode,
            attached: BTreeMap::new(),
        })
    }

    fn program(&mut self) -> Result<&mut SchedClassifier, BpfError> {
        self.ebpf
            .program_mut(PROGRAM)
            .ok_or(BpfError::Missing("program podpeer_router"))?
            .try_into()
            .map_err(|e| BpfError::Program(Box::new(e)))
    }

    /// Attaches the program at tc ingress of `ifname`. Already attached to
    /// the same interface: nothing happens. Attached to an earlier interface
    /// of that name (deleted and re-created since): that attachment is
    /// dropped and a new one made.
    pub fn attach(&mut self, ifname: &str) -> Result<Attachment, BpfError> {
        let ifindex = ifindex(ifname)?;
        if let Some(a) = self.attached.get(ifname) {
            if a.ifindex == ifindex {
                return Ok(Attachment {
                    ifname: ifname.to_owned(),
                    ifindex,
                    hook: a.hook,
                });
            }
            self.forget(ifname);
        }
        let mode = self.mode;
        let prog = self.program()?;
        let (link, hook) = match mode {
            AttachMode::Tcx => (attach_tcx(prog, ifname), Hook::Tcx),
            AttachMode::Clsact => (attach_clsact(prog, ifname), Hook::Clsact),
            AttachMode::Auto => match attach_tcx(prog, ifname) {
                Ok(link) => (Ok(link), Hook::Tcx),
                Err(e) => {
                    tracing::debug!(ifname, "TCX attach failed ({e}), using clsact");
                    (attach_clsact(prog, ifname), Hook::Clsact)
                }
            },
        };
        let link = link.map_err(|e| BpfError::Attach {
            ifname: ifname.to_owned(),
            source: Box::new(e),
        })?;
        self.attached.insert(
            ifname.to_owned(),
            Attached {
                ifindex,
                hook,
                link,
            },
        );
        tracing::info!(ifname, ifindex, %hook, "BPF router attached");
        Ok(Attachment {
            ifname: ifname.to_owned(),
            ifindex,
            hook,
        })
    }

    /// Detaches the program from `ifname`; false when it was not attached.
    /// An interface that is gone already counts as detached.
    pub fn detach(&mut self, ifname: &str) -> Result<bool, BpfError> {
        let Some(a) = self.attached.remove(ifname) else {
            return Ok(false);
        };
        match self.program()?.detach(a.link) {
            Ok(()) => {}
            Err(e) if interface_gone(&e) => {}
            Err(e) => {
                return Err(BpfError::Detach {
                    ifname: ifname.to_owned(),
                    source: Box::new(e),
                });
            }
        }
        tracing::info!(ifname, "BPF router detached");
        Ok(true)
    }

    /// Drops the attachment to an interface that is gone (the kernel removed
    /// the hook with it).
    pub(crate) fn forget(&mut self, ifname: &str) {
        if let Err(e) = self.detach(ifname) {
            tracing::debug!(ifname, "dropping a stale attachment: {e}");
        }
    }

    /// Detaches from every interface; the errors of those that failed.
    pub fn detach_all(&mut self) -> Vec<BpfError> {
        let names: Vec<String> = self.attached.keys().cloned().collect();
        names.iter().filter_map(|n| self.detach(n).err()).collect()
    }

    /// Where the program is attached now.
    pub fn attachments(&self) -> Vec<Attachment> {
        self.attached
            .iter()
            .map(|(name, a)| Attachment {
                ifname: name.clone(),
                ifindex: a.ifindex,
                hook: a.hook,
            })
            .collect()
    }

    /// The index `ifname` had when attached, if it is.
    pub fn attached_ifindex(&self, ifname: &str) -> Option<u32> {
        self.attached.get(ifname).map(|a| a.ifindex)
    }

    /// Packets arriving on `ifindex_in` are looked up in the FIB as if they
    /// had arrived on `ifindex_lookup` (a VRF member whose table is the VRF's).
    pub fn set_lookup_from(
        &mut self,
        ifindex_in: u32,
        ifindex_lookup: u32,
    ) -> Result<(), BpfError> {
        let mut map: BpfHashMap<_, u32, u32> = BpfHashMap::try_from(
            self.ebpf
                .map_mut(LOOKUP_FROM)
                .ok_or(BpfError::Missing("map lookup_from"))?,
        )
        .map_err(BpfError::map(LOOKUP_FROM))?;
        map.insert(ifindex_in, ifindex_lookup, 0)
            .map_err(BpfError::map(LOOKUP_FROM))
    }

    /// Packets arriving on `ifindex_in` are looked up from that interface
    /// again; false when no other was set.
    pub fn clear_lookup_from(&mut self, ifindex_in: u32) -> Result<bool, BpfError> {
        let mut map: BpfHashMap<_, u32, u32> = BpfHashMap::try_from(
            self.ebpf
                .map_mut(LOOKUP_FROM)
                .ok_or(BpfError::Missing("map lookup_from"))?,
        )
        .map_err(BpfError::map(LOOKUP_FROM))?;
        match map.remove(&ifindex_in) {
            Ok(()) => Ok(true),
            Err(MapError::KeyNotFound) => Ok(false),
            Err(MapError::SyscallError(e)) if e.io_error.kind() == io::ErrorKind::NotFound => {
                Ok(false)
            }
            Err(e) => Err(BpfError::map(LOOKUP_FROM)(e)),
        }
    }

    /// The lookup-from table: (ingress ifindex, lookup ifindex).
    pub fn lookup_from(&self) -> Result<Vec<(u32, u32)>, BpfError> {
        let map: BpfHashMap<_, u32, u32> = BpfHashMap::try_from(
            self.ebpf
                .map(LOOKUP_FROM)
                .ok_or(BpfError::Missing("map lookup_from"))?,
        )
        .map_err(BpfError::map(LOOKUP_FROM))?;
        let mut pairs = map
            .iter()
            .collect::<Result<Vec<_>, _>>()
            .map_err(BpfError::map(LOOKUP_FROM))?;
        pairs.sort_unstable();
        Ok(pairs)
    }

    /// The packet counters, summed over CPUs.
    pub fn counters(&self) -> Result<Counters, BpfError> {
        let array: PerCpuArray<_, u64> = PerCpuArray::try_from(
            self.ebpf
                .map(COUNTERS)
                .ok_or(BpfError::Missing("map counters"))?,
        )
        .map_err(BpfError::map(COUNTERS))?;
        let mut counters = Counters::default();
        for outcome in Outcome::ALL {
            let per_cpu = array
                .get(&outcome.index(), 0)
                .map_err(BpfError::map(COUNTERS))?;
            counters.set(outcome, per_cpu.iter().sum());
        }
        Ok(counters)
    }

    /// Runs the program once on `packet` (an Ethernet frame) with
    /// `BPF_PROG_TEST_RUN`, as if it had arrived on `ingress_ifindex` of the
    /// calling thread's network namespace; nothing is sent anywhere. The
    /// counters count it like any other packet.
    pub fn test_run(&self, packet: &[u8], ingress_ifindex: u32) -> Result<TestRunOutput, BpfError> {
        let prog: &SchedClassifier = self
            .ebpf
            .program(PROGRAM)
            .ok_or(BpfError::Missing("program podpeer_router"))?
            .try_into()
            .map_err(|e| BpfError::Program(Box::new(e)))?;
        // The head of struct __sk_buff, up to `cb`: the kernel lets a test set
        // ingress_ifindex (offset 36) and ifindex (offset 40, the device the
        // skb is on, whose MAC decides pkt_type); every other field stays 0.
        let mut ctx = [0u8; 48];
        ctx[36..40].copy_from_slice(&ingress_ifindex.to_ne_bytes());
        ctx[40..44].copy_from_slice(&ingress_ifindex.to_ne_bytes());
        // Room for the packet to grow (it never does today; pop shrinks it).
        let mut out = vec![0u8; packet.len() + 64];
        let result = prog
            .test_run(TestRunOptions {
                data_in: Some(packet),
                data_out: Some(&mut out),
                ctx_in: Some(&ctx),
                ctx_out: None,
                repeat: 1,
                attrs: TestRunAttrs::new(),
            })
            .map_err(|e| BpfError::TestRun(Box::new(e)))?;
        out.truncate(result.data_size_out as usize);
        Ok(TestRunOutput {
            verdict: result.return_value as i32,
            packet: out,
        })
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        for e in self.detach_all() {
            tracing::warn!("{e}");
        }
    }
}

fn ifindex(ifname: &str) -> Result<u32, BpfError> {
    nix::net::if_::if_nametoindex(ifname).map_err(|_| BpfError::NoInterface(ifname.to_owned()))
}

fn attach_tcx(
    prog: &mut SchedClassifier,
    ifname: &str,
) -> Result<SchedClassifierLinkId, ProgramError> {
    prog.attach_with_options(
        ifname,
        TcAttachType::Ingress,
        TcAttachOptions::TcxOrder(LinkOrder::default()),
    )
}

fn attach_clsact(
    prog: &mut SchedClassifier,
    ifname: &str,
) -> Result<SchedClassifierLinkId, ProgramError> {
    match tc::qdisc_add_clsact(ifname) {
        Ok(()) => {}
        Err(TcError::NetlinkError(e)) if e.raw_os_error() == Some(nix::libc::EEXIST) => {}
        Err(e) => return Err(e.into()),
    }
    // A filter left by an earlier run that died without detaching would run
    // the packets through a second, orphaned copy of the program first.
    match tc::qdisc_detach_program(ifname, TcAttachType::Ingress, PROGRAM) {
        Ok(()) => tracing::info!(ifname, "removed a BPF router filter left by an earlier run"),
        Err(TcError::IoError(e)) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(ifname, "cannot look for stale BPF router filters: {e}"),
    }
    prog.attach_with_options(
        ifname,
        TcAttachType::Ingress,
        TcAttachOptions::Netlink(NlOptions::default()),
    )
}

/// Whether a detach failed only because the interface (and so the hook) is
/// gone.
fn interface_gone(e: &ProgramError) -> bool {
    let os = match e {
        ProgramError::NetlinkError(e) => e.raw_os_error(),
        ProgramError::TcError(TcError::NetlinkError(e)) => e.raw_os_error(),
        ProgramError::SyscallError(e) => e.io_error.raw_os_error(),
        _ => None,
    };
    matches!(
        os,
        Some(nix::libc::ENODEV | nix::libc::ENOENT | nix::libc::EINVAL)
    )
}
