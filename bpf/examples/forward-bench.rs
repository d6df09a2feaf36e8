//! Forwarding throughput of a router namespace: the kernel's forward path
//! (conntrack plus an nftables ruleset) against the tc-eBPF router, in one run.
//!
//! ```text
//! client c0 --veth-- r1 [router: forwarding, conntrack, nft] r2 --veth-- s0 server
//! ```
//!
//! The client sends Ethernet frames (UDP over IPv4, `--flows` source ports),
//! so no client IP stack sits in the measurement. What counts is what the
//! router forwarded: the packets r2 transmitted (its `tx_packets`), per
//! second. Behind r2, `--sink udp` (default) has the server receive them on a
//! UDP socket (`recvmmsg` on CPU 1); `--sink l2` addresses them to a MAC the
//! server does not have, so it discards them on arrival and the figure is the
//! router's alone. The generator is pinned to CPU 0. By default, on veth, the
//! router's work (and the server's receive) runs in the sender's softirq on
//! that CPU. With `--router-cpu N`, r1 and s0 receive through threaded NAPI
//! (GRO on at the receiving end, TSO off at the sending end, the condition
//! for veth to queue to its peer's NAPI instead of receiving in the sender's
//! context): r1's poll, and with it the whole forwarding, runs in the
//! `napi/r1-*` kthread pinned to CPU N, as on a router whose NIC delivers to
//! its own core; s0's poll runs on the generator's CPU. The same nftables
//! ruleset is loaded in both modes; with the program attached the packets
//! never reach it. Rounds alternate kernel / eBPF so that machine noise falls
//! on both alike.
//!
//! Two generators:
//! - `--generator xdp`, the default with `--router-cpu`: the kernel makes the
//!   frames itself. A child process runs `xdpgen.c` with `BPF_PROG_TEST_RUN`
//!   in XDP live-frames mode (`BPF_F_TEST_XDP_LIVE_FRAMES`, kernel 5.18+) on
//!   frames built from one template in a page pool; its `XDP_TX` puts each
//!   straight into r1's NAPI ring (veth's `ndo_xdp_xmit`), with no socket,
//!   skb or qdisc on the way, and r1's poll turns them into skbs as a NIC
//!   driver does. One core offers several times what a router core forwards,
//!   so the router core is saturated in every mode (frames that find r1's
//!   ring full are dropped there, counted in c0's `tx_dropped`). The child
//!   runs in a session of its own with `--generator-nice` (default -20) on
//!   its autogroup, and r1's kthread at `--router-nice` (default -20), so
//!   that other jobs on a shared machine neither stall the generator nor
//!   share the router core; the run takes both cores while it lasts.
//! - `--generator af-packet`, the default without `--router-cpu`: prebuilt
//!   frames written with `sendmmsg` on an `AF_PACKET` socket, which costs the
//!   sender about as much per frame as the router spends forwarding it, so
//!   one sender core cannot keep the router core busy.
//!
//! Two figures per run: packets per second of wall-clock time (what other
//! jobs on a shared machine take from the CPU lowers it), and packets per
//! second of CPU actually spent on them, the steadier one when the machine is
//! busy: by default the generator thread's CPU time (which includes the
//! softirq work done in its context) plus ksoftirqd/0's; with `--router-cpu`
//! the router core's, the NAPI kthread's plus that CPU's ksoftirqd's.
//!
//! Run as root: `cargo run --release -p podpeer-bpf --example forward-bench
//! -- --sink l2 --router-cpu 1`.

use aya::maps::Array;
use aya::programs::{TestRun, TestRunAttrs, TestRunOptions, Xdp};

use std::fs::File;
use std::io::IoSlice;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use interop_tests::{Netns, veth};
use nix::sched::{CloneFlags, CpuSet, sched_setaffinity, setns};
use nix::sys::socket::{
    AddressFamily, MsgFlags, MultiHeaders, SockFlag, SockProtocol, SockType, SockaddrLike,
    SockaddrStorage, bind, recvmmsg, sendmmsg, setsockopt, socket, sockopt,
};
use nix::unistd::Pid;
use podpeer_bpf::{Outcome, Router};

#[derive(Parser)]
#[command(about = "Kernel forwarding (conntrack + nftables) vs the tc-eBPF router")]
struct Args {
    /// Seconds measured per run (after one second of warm-up).
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Runs per mode and frame size (alternating kernel, eBPF).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Ethernet frame sizes without FCS (60 is a minimum 64-byte frame).
    #[arg(long, value_delimiter = ',', default_value = "60,1514")]
    sizes: Vec<usize>,
    /// UDP flows (source ports).
    #[arg(long, default_value_t = 64)]
    flows: u16,
    /// Frames per sendmmsg call (`af-packet`, default 64), or per
    /// live-frames batch (`xdp`, at most 256, default 16: a batch leaves as
    /// one burst when it is done).
    #[arg(long)]
    batch: Option<usize>,
    /// How the client sends: `xdp` (XDP live frames, needs `--router-cpu`
    /// and kernel 5.18 or later) or `af-packet` (`sendmmsg`). Default: `xdp`
    /// with `--router-cpu`, else `af-packet`.
    #[arg(long, value_enum)]
    generator: Option<Generator>,
    /// The XDP generator's nice value: below 0 it keeps its core against
    /// other jobs on a shared machine (every time it is off the CPU for more
    /// than r1's 256-frame ring lasts, the router core runs dry).
    #[arg(long, default_value_t = -20, allow_negative_numbers = true)]
    generator_nice: i32,
    /// `--router-cpu`: the nice value of r1's NAPI kthread (the router's
    /// work). Below 0 it keeps its core against other jobs, which otherwise
    /// take turns with it and cool its caches; 0 leaves it as it is.
    #[arg(long, default_value_t = -20, allow_negative_numbers = true)]
    router_nice: i32,
    /// The XDP generator's rate in Mpps (paced); default: as fast as it can.
    #[arg(long)]
    offered_mpps: Option<f64>,
    /// Internal: run as the XDP generator's child process in this netns.
    #[arg(long, hide = true)]
    xdp_child_netns: Option<String>,
    /// Internal: the XDP generator's template frame, in hex.
    #[arg(long, hide = true)]
    xdp_child_frame: Option<String>,
    /// What the server does with the packets: `udp` (a socket receives
    /// them) or `l2` (discarded on arrival, not addressed to its MAC).
    #[arg(long, value_enum, default_value_t = Sink::Udp)]
    sink: Sink,
    /// Run the router's receive and forwarding in r1's threaded NAPI
    /// kthread on this CPU (not 0, the generator's), and count that core's
    /// CPU time. Without it everything runs in the generator's context.
    #[arg(long)]
    router_cpu: Option<usize>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
enum Generator {
    Xdp,
    AfPacket,
}

impl Generator {
    fn describe(self) -> &'static str {
        match self {
            Generator::Xdp => "XDP live frames (BPF_PROG_TEST_RUN, XDP_TX into c0)",
            Generator::AfPacket => "AF_PACKET sendmmsg",
        }
    }
}

/// The compiled `xdpgen.c` (built by `build.rs`).
static XDPGEN: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xdpgen.o"));
const XDPGEN_PROGRAM: &str = "podpeer_xdpgen";
/// The first UDP source port; flows use the ones after it.
const BASE_PORT: u16 = 10_000;
/// The XDP generator offers this many times what the router forwarded.
const OFFER: f64 = 1.25;
/// Ethernet + IPv4 + UDP: what `xdpgen.c` writes over every frame.
const HEADER_LEN: usize = 14 + 20 + 8;

#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
enum Sink {
    Udp,
    L2,
}

const CLIENT_MAC: [u8; 6] = [0x02, 0xbe, 0, 0, 0, 0x01];
const R1_MAC: [u8; 6] = [0x02, 0xbe, 0, 0, 0, 0x02];
const R2_MAC: [u8; 6] = [0x02, 0xbe, 0, 0, 0, 0x03];
const SERVER_MAC: [u8; 6] = [0x02, 0xbe, 0, 0, 0, 0x04];
/// Nobody's: frames the router sends here are dropped by the server's NIC
/// logic (`PACKET_OTHERHOST`) before IP sees them.
const NOBODY_MAC: [u8; 6] = [0x02, 0xbe, 0, 0, 0, 0x99];
const CLIENT: [u8; 4] = [10, 20, 1, 2];
const SERVER: [u8; 4] = [10, 20, 2, 2];
const SINK_PORT: u16 = 9;

/// A ruleset of the usual shape: established first, then a few rules, and
/// the benchmark's flows accepted as new by the last one (one-way UDP never
/// becomes established, so every packet walks the chain).
const RULESET: &str = r#"
table inet bench {
    chain forward {
        type filter hook forward priority filter; policy drop;
        ct state established,related accept
        ct state invalid drop
        iifname "r2" oifname "r1" accept
        meta l4proto icmp accept
        tcp dport { 22, 80, 443 } accept
        ip daddr 10.20.2.2 udp dport 9 ct state new accept
    }
}
"#;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    /// No forwarding: the frames are not addressed to r1 and die in its
    /// `ip_rcv`. What every mode pays besides the router's work.
    Baseline,
    Kernel,
    Ebpf,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Baseline => "baseline: sent, received, dropped at r1",
            Mode::Kernel => "kernel (conntrack + nft)",
            Mode::Ebpf => "tc-eBPF router",
        }
    }
}

/// The generator's CPU.
const GENERATOR_CPU: usize = 0;

struct Lab {
    client: Netns,
    router: Netns,
    server: Netns,
    /// `--router-cpu`: r1's NAPI kthread and the CPU it is pinned to.
    router_napi: Option<(i32, usize)>,
    /// `/proc/net/dev` of the client's and the router's namespaces: read
    /// in place, without a process per reading (the run leaves other
    /// processes little CPU).
    client_dev: File,
    router_dev: File,
}

/// Opens `/proc/thread-self/net/dev` from inside `ns`: the file stays bound
/// to that namespace.
fn open_net_dev(ns: &Netns) -> Result<File> {
    std::thread::scope(|s| {
        s.spawn(|| -> Result<File> {
            setns(File::open(ns.path())?, CloneFlags::CLONE_NEWNET)?;
            Ok(File::open("/proc/thread-self/net/dev")?)
        })
        .join()
        .map_err(|_| anyhow::anyhow!("netns thread panicked"))?
    })
}

/// One counter of `dev` from a `/proc/net/dev` file.
fn net_dev_counter(file: &File, dev: &str, stat: &str) -> Result<u64> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; 16 << 10];
    let mut len = 0;
    loop {
        let n = file.read_at(&mut buf[len..], len as u64)?;
        if n == 0 {
            break;
        }
        len += n;
        if len == buf.len() {
            buf.resize(len * 2, 0);
        }
    }
    let text = String::from_utf8_lossy(&buf[..len]);
    // Receive: bytes packets errs drop fifo frame compressed multicast;
    // then transmit: bytes packets errs drop ...
    let column = match stat {
        "rx_packets" => 1,
        "tx_packets" => 9,
        "tx_dropped" => 11,
        _ => bail!("no column for {stat}"),
    };
    text.lines()
        .find_map(|l| {
            let (name, rest) = l.split_once(':')?;
            (name.trim() == dev).then(|| rest.split_whitespace().nth(column)?.parse().ok())?
        })
        .with_context(|| format!("no {stat} for {dev} in /proc/net/dev"))
}

fn mac(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

impl Lab {
    fn new(sink: Sink, router_cpu: Option<usize>, router_nice: i32) -> Result<Self> {
        let client = Netns::new("bc")?;
        let router = Netns::new("br")?;
        let mut lab = Self {
            client_dev: open_net_dev(&client)?,
            router_dev: open_net_dev(&router)?,
            client,
            router,
            server: Netns::new("bs")?,
            router_napi: None,
        };
        veth(
            &lab.client,
            "c0",
            &["10.20.1.2/24"],
            &lab.router,
            "r1",
            &["10.20.1.1/24"],
        )?;
        veth(
            &lab.router,
            "r2",
            &["10.20.2.1/24"],
            &lab.server,
            "s0",
            &["10.20.2.2/24"],
        )?;
        for (ns, dev, m) in [
            (&lab.client, "c0", CLIENT_MAC),
            (&lab.router, "r1", R1_MAC),
            (&lab.router, "r2", R2_MAC),
            (&lab.server, "s0", SERVER_MAC),
        ] {
            ns.ip(&["link", "set", "dev", dev, "address", &mac(m)])?;
        }
        lab.router
            .exec(&["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
        // Fixed neighbors: no ARP during the measurement.
        let server_mac = match sink {
            Sink::Udp => SERVER_MAC,
            Sink::L2 => NOBODY_MAC,
        };
        for (addr, m, dev) in [
            ("10.20.2.2", server_mac, "r2"),
            ("10.20.1.2", CLIENT_MAC, "r1"),
        ] {
            let m = mac(m);
            lab.router.ip(&[
                "neigh",
                "replace",
                addr,
                "lladdr",
                &m,
                "dev",
                dev,
                "nud",
                "permanent",
            ])?;
        }
        let mut nft = lab.router.command("nft");
        nft.args(["-f", "-"]);
        run_with_stdin(nft, RULESET)?;
        if let Some(cpu) = router_cpu {
            let pid = threaded_napi(&lab.client, "c0", &lab.router, "r1", cpu)?;
            threaded_napi(&lab.router, "r2", &lab.server, "s0", GENERATOR_CPU)?;
            if router_nice != 0 {
                let status = std::process::Command::new("renice")
                    .args(["-n", &router_nice.to_string(), "-p", &pid.to_string()])
                    .stdout(std::process::Stdio::null())
                    .status()
                    .context("renice")?;
                if !status.success() {
                    bail!("renice of r1's NAPI kthread failed: {status}");
                }
            }
            lab.router_napi = Some((pid, cpu));
        }
        Ok(lab)
    }

    /// CPU time spent on the router's work so far: r1's NAPI kthread and
    /// its CPU's ksoftirqd (`--router-cpu`), else none (the generator
    /// measures its own).
    fn router_cpu_time(&self) -> Duration {
        self.router_napi.map_or(Duration::ZERO, |(pid, cpu)| {
            task_cpu(pid)
                + find_task(&format!("ksoftirqd/{cpu}\n")).map_or(Duration::ZERO, task_cpu)
        })
    }

    /// Time r1's NAPI kthread was runnable, on the CPU or waiting for it
    /// (`--router-cpu`): near the wall-clock time when it never ran out of
    /// packets, whatever share of the core other jobs took.
    fn router_runnable(&self) -> Duration {
        self.router_napi.map_or(Duration::ZERO, |(pid, _)| {
            let (run, wait) = schedstat(pid);
            run + wait
        })
    }

    fn client_counter(&self, dev: &str, stat: &str) -> Result<u64> {
        net_dev_counter(&self.client_dev, dev, stat)
    }

    fn counter(&self, dev: &str, stat: &str) -> Result<u64> {
        net_dev_counter(&self.router_dev, dev, stat)
    }

    /// Packets the router sent out toward the server (baseline: received
    /// on r1).
    fn forwarded(&self, mode: Mode) -> Result<u64> {
        match mode {
            Mode::Baseline => self.counter("r1", "rx_packets"),
            // With `--router-cpu`, s0's NAPI shares CPU 0 with the
            // generator and falls behind: r2's frames then overflow its ring
            // (tx_dropped) after the router has done all its work.
            Mode::Kernel | Mode::Ebpf if self.router_napi.is_some() => {
                Ok(self.counter("r2", "tx_packets")? + self.counter("r2", "tx_dropped")?)
            }
            Mode::Kernel | Mode::Ebpf => self.counter("r2", "tx_packets"),
        }
    }

    fn conntrack_entries(&self) -> Result<u64> {
        let n = self
            .router
            .exec(&["cat", "/proc/sys/net/netfilter/nf_conntrack_count"])?;
        Ok(n.trim().parse()?)
    }
}

fn run_with_stdin(mut cmd: std::process::Command, input: &str) -> Result<()> {
    use std::io::Write;
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .spawn()
        .context("nft")?;
    child
        .stdin
        .take()
        .context("nft stdin")?
        .write_all(input.as_bytes())?;
    if !child.wait()?.success() {
        bail!("nft -f failed");
    }
    Ok(())
}

/// Makes `rx` (peer of `tx`) receive in a threaded NAPI instance pinned to
/// `cpu`; returns the kthread's pid. veth queues a frame to the receiver's
/// NAPI only if GRO is on there and TSO off on the sender
/// (`veth_skb_is_eligible_for_gro`); otherwise the receive runs in the
/// sender's context. UDP GRO forwarding stays off, so GRO merges nothing
/// (`measure` checks r2 sent what r1 received).
fn threaded_napi(tx_ns: &Netns, tx: &str, rx_ns: &Netns, rx: &str, cpu: usize) -> Result<i32> {
    tx_ns.exec(&["ethtool", "-K", tx, "tso", "off"])?;
    rx_ns.exec(&[
        "ethtool",
        "-K",
        rx,
        "gro",
        "on",
        "rx-udp-gro-forwarding",
        "off",
        "rx-gro-list",
        "off",
    ])?;
    // Another run's namespaces may have a `napi/r1-*` too: take the new one.
    let name = format!("napi/{rx}-");
    let before = find_tasks(&name);
    rx_ns.exec(&[
        "sh",
        "-c",
        &format!("echo 1 > /sys/class/net/{rx}/threaded"),
    ])?;
    let pid = (0..100)
        .find_map(|_| {
            let pid = find_tasks(&name).into_iter().find(|p| !before.contains(p));
            if pid.is_none() {
                std::thread::sleep(Duration::from_millis(10));
            }
            pid
        })
        .with_context(|| format!("no new {name}* kthread: threaded NAPI did not start"))?;
    let mut set = CpuSet::new();
    set.set(cpu % num_cpus())?;
    sched_setaffinity(Pid::from_raw(pid), &set).context("pinning the NAPI kthread")?;
    Ok(pid)
}

/// The tasks whose name (with its newline) starts with `prefix`.
fn find_tasks(prefix: &str) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_str()?.parse().ok()?;
            std::fs::read_to_string(e.path().join("comm"))
                .ok()?
                .starts_with(prefix)
                .then_some(pid)
        })
        .collect()
}

fn find_task(prefix: &str) -> Option<i32> {
    find_tasks(prefix).first().copied()
}

/// CPU time a task has run (`/proc/PID/schedstat`, nanoseconds).
fn task_cpu(pid: i32) -> Duration {
    schedstat(pid).0
}

/// A task's time on the CPU and time runnable but waiting for it.
fn schedstat(pid: i32) -> (Duration, Duration) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/schedstat")).unwrap_or_default();
    let mut f = s
        .split_whitespace()
        .map(|x| Duration::from_nanos(x.parse().unwrap_or(0)));
    (f.next().unwrap_or_default(), f.next().unwrap_or_default())
}

/// Moves the calling thread into `ns` and onto `cpu`.
fn enter(ns: &Netns, cpu: usize) -> Result<()> {
    setns(File::open(ns.path())?, CloneFlags::CLONE_NEWNET)?;
    let mut set = CpuSet::new();
    set.set(cpu % num_cpus())?;
    sched_setaffinity(Pid::from_raw(0), &set)?;
    Ok(())
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// One frame per flow: Ethernet + IPv4 + UDP to the sink, `size` bytes.
fn frames(size: usize, flows: u16, dst_mac: [u8; 6]) -> Vec<Vec<u8>> {
    let size = size.max(14 + 20 + 8);
    (0..flows)
        .map(|flow| {
            let ip_len = size - 14;
            let mut f = Vec::with_capacity(size);
            f.extend_from_slice(&dst_mac);
            f.extend_from_slice(&CLIENT_MAC);
            f.extend_from_slice(&[0x08, 0x00]);
            let mut ip = vec![0x45, 0];
            ip.extend_from_slice(&(ip_len as u16).to_be_bytes());
            ip.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0]);
            ip.extend_from_slice(&CLIENT);
            ip.extend_from_slice(&SERVER);
            let c = checksum(&ip);
            ip[10..12].copy_from_slice(&c.to_be_bytes());
            f.extend_from_slice(&ip);
            f.extend_from_slice(&(BASE_PORT + flow).to_be_bytes());
            f.extend_from_slice(&SINK_PORT.to_be_bytes());
            f.extend_from_slice(&((ip_len - 20) as u16).to_be_bytes());
            f.extend_from_slice(&[0, 0]);
            f.resize(size, 0x5a);
            f
        })
        .collect()
}

/// Sends `frames` round-robin on c0 until `stop`; returns frames sent and
/// the CPU time this thread used meanwhile (the packets' whole way through
/// the router runs in its softirq context, charged to it).
fn generate(
    lab: &Lab,
    frames: &[Vec<u8>],
    batch: usize,
    stop: &AtomicBool,
) -> Result<(u64, Duration)> {
    enter(&lab.client, GENERATOR_CPU)?;
    let link = nix::ifaddrs::getifaddrs()?
        .find(|a| {
            a.interface_name == "c0"
                && a.address
                    .as_ref()
                    .is_some_and(|s| s.family() == Some(AddressFamily::Packet))
        })
        .and_then(|a| a.address)
        .context("c0 has no link-level address")?;
    let link = *link.as_link_addr().context("not a link address")?;
    // Protocol 0: this socket only sends, it never receives a copy.
    let fd = socket(
        AddressFamily::Packet,
        SockType::Raw,
        SockFlag::empty(),
        None::<SockProtocol>,
    )?;
    bind(fd.as_raw_fd(), &link)?;
    let iovs: Vec<[IoSlice<'_>; 1]> = frames
        .iter()
        .cycle()
        .take(batch.max(1) * frames.len().max(1))
        .map(|f| [IoSlice::new(f)])
        .collect();
    let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(batch, None);
    let addrs = vec![None; batch];
    let mut sent = 0u64;
    let mut start = 0;
    let cpu0 = thread_cpu()?;
    while !stop.load(Ordering::Relaxed) {
        let chunk = &iovs[start..start + batch];
        start = (start + batch) % (iovs.len() - batch + 1);
        match sendmmsg(
            fd.as_raw_fd(),
            &mut headers,
            chunk,
            &addrs,
            [],
            MsgFlags::empty(),
        ) {
            Ok(r) => sent += r.count() as u64,
            // r1's ring is full. Without a router CPU, let ksoftirqd/0 drain
            // it; with one, retry at once: yielding would hand CPU 0 to other
            // jobs for a whole time slice while the router core runs dry.
            Err(nix::errno::Errno::ENOBUFS) if lab.router_napi.is_none() => {
                std::thread::yield_now()
            }
            Err(nix::errno::Errno::ENOBUFS) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok((sent, thread_cpu()? - cpu0))
}

/// Has the kernel send frames built from `template` on c0 until `stop`,
/// from a child process (`xdp_child`) on the generator's CPU. Returns the
/// frames offered (c0's `tx_packets` and `tx_dropped`: the XDP frames veth
/// queued on r1's ring and those that found it full) and the child's CPU
/// time.
///
/// A child, because a live-frames run ends only when its repeat count is
/// done or a signal is pending, and every run ends in an RCU grace period
/// (the page pool's teardown) that lasts as long as 100-300 ms while the
/// router's NAPI thread keeps its core busy: repeated short runs would leave
/// the router idle for much of the time. The child makes one endless run and
/// is killed when the measurement ends.
///
/// The rate: offering far more than the router forwards does not make it
/// forward more, it slows it down. Frames that find r1's ring full are
/// returned to the generator's page pool, and so are the router's frames
/// once forwarded, under the same lock: with ten times more offered than
/// forwarded, a fifth of the router core went to that lock (`perf`). So the
/// child paces its frames, and unless `--offered-mpps` fixes the rate, this
/// sets it every 100 ms to `OFFER` times what the router forwarded in the
/// last 100 ms: always more than the router takes (r1's ring stays full and
/// the router core busy, which `runnable` shows), never much more.
fn generate_xdp(
    lab: &Lab,
    mode: Mode,
    template: &[u8],
    args: &Args,
    stop: &AtomicBool,
) -> Result<(u64, Duration)> {
    let offered = || -> Result<u64> {
        Ok(lab.client_counter("c0", "tx_packets")? + lab.client_counter("c0", "tx_dropped")?)
    };
    let before = offered()?;
    let exe = std::env::current_exe()?;
    let mut cmd = std::process::Command::new("nice");
    cmd.arg("-n")
        .arg(args.generator_nice.to_string())
        .arg(exe)
        .arg("--xdp-child-netns")
        .arg(lab.client.path())
        .arg("--xdp-child-frame")
        .arg(
            template
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>(),
        )
        .args(["--flows", &args.flows.to_string()])
        .args(["--batch", &args.batch().to_string()])
        .args(["--generator-nice", &args.generator_nice.to_string()])
        .args(
            args.offered_mpps
                .map(|m| ["--offered-mpps".to_owned(), m.to_string()])
                .into_iter()
                .flatten(),
        )
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = cmd.spawn().context("starting the XDP generator")?;
    let mut rate = child.stdin.take().context("child stdin")?;
    let pid = i32::try_from(child.id())?;
    // The child says "ready" once its program is loaded; EOF means it failed
    // (its error went to our stderr).
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().context("child stdout")?),
        &mut line,
    )?;
    if line.trim() != "ready" {
        let status = child.wait()?;
        bail!("the XDP generator did not start ({status})");
    }
    let cpu0 = task_cpu(pid);
    let dropped = || lab.client_counter("c0", "tx_dropped");
    let mut last = (Instant::now(), lab.forwarded(mode)?, dropped()?);
    let mut mpps = 0.0;
    while !stop.load(Ordering::Relaxed) {
        if let Some(status) = child.try_wait()? {
            bail!("the XDP generator stopped: {status}");
        }
        std::thread::sleep(Duration::from_millis(100));
        if args.offered_mpps.is_none() {
            let now = (Instant::now(), lab.forwarded(mode)?, dropped()?);
            let pps = now.1.saturating_sub(last.1) as f64 / (now.0 - last.0).as_secs_f64();
            let overflowed = now.2 > last.2;
            mpps = if pps < 1e3 {
                // Nothing forwarded yet (the first frames, or a stall).
                0.0
            } else if overflowed || mpps == 0.0 {
                OFFER * pps / 1e6
            } else {
                // r1's ring never filled: the router was not saturated.
                2.0 * mpps
            };
            std::io::Write::write_all(&mut rate, format!("{mpps}\n").as_bytes())?;
            last = now;
        }
    }
    let cpu = task_cpu(pid).saturating_sub(cpu0);
    child.kill()?;
    child.wait()?;
    Ok((offered()?.saturating_sub(before), cpu))
}

/// The XDP generator's child process: enters `netns`, pins itself to the
/// generator's CPU, and runs `xdpgen.c` in XDP live-frames mode
/// (`BPF_PROG_TEST_RUN` with `BPF_F_TEST_XDP_LIVE_FRAMES`) on frames made
/// from `template` until killed. Its `XDP_TX` is a redirect to the frames'
/// ingress interface, c0, whose `ndo_xdp_xmit` queues each frame on r1's
/// NAPI ring (there only because GRO is on at r1: `--router-cpu`); frames
/// that find the ring full are dropped there, counted in c0's `tx_dropped`.
fn xdp_child(args: &Args, netns: &str, template: &[u8]) -> Result<()> {
    let (flows, batch) = (args.flows, args.batch());
    let interval_ns = |mpps: f64| if mpps > 0.0 { (1e3 / mpps) as u64 } else { 0 };
    setns(File::open(netns)?, CloneFlags::CLONE_NEWNET)?;
    // With autogroups (sched_autogroup_enabled) the scheduler shares a CPU
    // between sessions first and applies nice values only inside one: a
    // session of its own, with the nice value set on it, is what gives the
    // generator its core against other jobs.
    if std::path::Path::new("/proc/self/autogroup").exists() {
        nix::unistd::setsid()?;
        if let Err(e) = std::fs::write("/proc/self/autogroup", args.generator_nice.to_string()) {
            eprintln!("note: cannot set the XDP generator's autogroup nice value: {e}");
        }
    }
    let mut set = CpuSet::new();
    set.set(GENERATOR_CPU)?;
    sched_setaffinity(Pid::from_raw(0), &set)?;
    let c0 = nix::net::if_::if_nametoindex("c0").context("c0")?;
    let flows = u32::from(flows.max(1));
    let mut ebpf = aya::EbpfLoader::new()
        .override_global("flows", &flows, true)
        .override_global("base_port", &BASE_PORT, true)
        .load(XDPGEN)
        .context("loading xdpgen.o")?;
    let prog: &mut Xdp = ebpf
        .program_mut(XDPGEN_PROGRAM)
        .context("xdpgen.o has no program podpeer_xdpgen")?
        .try_into()?;
    prog.load().context("loading the XDP generator program")?;
    let mut header: Array<_, [u8; HEADER_LEN]> = Array::try_from(
        ebpf.map_mut("header")
            .context("xdpgen.o has no map header")?,
    )?;
    header.set(
        0,
        <[u8; HEADER_LEN]>::try_from(template.get(..HEADER_LEN).context("template too short")?)?,
        0,
    )?;
    // The rate: from --offered-mpps, else from the parent, a line of Mpps at
    // a time on stdin (0: no limit). Stdin's end is the parent's: should it
    // die without killing us, we end too.
    let mut interval: Array<_, u64> = Array::try_from(
        ebpf.take_map("interval")
            .context("xdpgen.o has no map interval")?,
    )?;
    interval.set(0, interval_ns(args.offered_mpps.unwrap_or(0.0)), 0)?;
    let fixed = args.offered_mpps.is_some();
    std::thread::spawn(move || {
        let result = std::io::stdin().lines().try_for_each(|line| -> Result<()> {
            let mpps: f64 = line?.trim().parse().context("rate from the parent")?;
            if !fixed {
                interval.set(0, interval_ns(mpps), 0)?;
            }
            Ok(())
        });
        if let Err(e) = &result {
            eprintln!("XDP generator: {e:#}");
        }
        std::process::exit(i32::from(result.is_err()));
    });
    let prog: &Xdp = ebpf
        .program(XDPGEN_PROGRAM)
        .context("xdpgen.o has no program podpeer_xdpgen")?
        .try_into()?;
    // struct xdp_md: data, data_end, data_meta, ingress_ifindex,
    // rx_queue_index, egress_ifindex. The frames arrive "on" c0, so XDP_TX
    // sends them out of c0.
    let mut ctx = [0u8; 24];
    ctx[4..8].copy_from_slice(&u32::try_from(template.len())?.to_ne_bytes());
    ctx[12..16].copy_from_slice(&c0.to_ne_bytes());
    let batch = u32::try_from(batch.clamp(1, 256))?;
    println!("ready");
    loop {
        prog.test_run(TestRunOptions {
            data_in: Some(template),
            data_out: None,
            ctx_in: Some(&ctx),
            ctx_out: None,
            repeat: u32::MAX,
            attrs: TestRunAttrs::new().xdp_live_frames(batch),
        })
        .context(
            "BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES \
             (kernel 5.18 or later; else --generator af-packet)",
        )?;
    }
}

fn hex_decode(hex: &str) -> Result<Vec<u8>> {
    (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|b| u8::from_str_radix(b, 16).ok())
                .context("--xdp-child-frame: not hex")
        })
        .collect()
}

fn thread_cpu() -> Result<Duration> {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)?;
    Ok(Duration::from(t))
}

/// CPU time of ksoftirqd/0, which takes over softirq work that overflows.
fn ksoftirqd0() -> Duration {
    find_task("ksoftirqd/0\n").map_or(Duration::ZERO, task_cpu)
}

/// Counts datagrams on the sink port until `stop`.
fn sink(lab: &Lab, received: &AtomicU64, stop: &AtomicBool, ready: &AtomicBool) -> Result<()> {
    // Off the router's CPU when it has one.
    let cpu = if lab.router_napi.is_some() {
        GENERATOR_CPU
    } else {
        1
    };
    enter(&lab.server, cpu)?;
    let sock = UdpSocket::bind(("0.0.0.0", SINK_PORT))?;
    setsockopt(&sock, sockopt::RcvBuf, &(16 << 20))?;
    sock.set_read_timeout(Some(Duration::from_millis(100)))?;
    const BATCH: usize = 64;
    let mut bufs = vec![[0u8; 2048]; BATCH];
    let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
    ready.store(true, Ordering::Release);
    while !stop.load(Ordering::Relaxed) {
        let mut iovs: Vec<[std::io::IoSliceMut<'_>; 1]> = bufs
            .iter_mut()
            .map(|b| [std::io::IoSliceMut::new(b)])
            .collect();
        match recvmmsg(
            sock.as_raw_fd(),
            &mut headers,
            iovs.iter_mut(),
            MsgFlags::MSG_WAITFORONE,
            None,
        ) {
            Ok(r) => {
                received.fetch_add(r.count() as u64, Ordering::Relaxed);
            }
            Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

struct Sample {
    /// Forwarded by the router (r2 transmitted), per second.
    pps: f64,
    /// Forwarded per second of CPU spent on the packets: the generator
    /// thread's CPU time plus ksoftirqd/0's, or with `--router-cpu` the
    /// router core's (r1's NAPI kthread plus that CPU's ksoftirqd). Unlike
    /// `pps`, other jobs on the machine taking the CPU do not change it.
    per_cpu_pps: f64,
    /// That CPU time per second of wall clock: near 1 when the measured
    /// core was saturated.
    busy: f64,
    /// `--router-cpu`: the share of wall-clock time r1's NAPI kthread was
    /// runnable; near 1 when the generator kept it supplied.
    runnable: f64,
    /// Written (offered) by the generator, per second.
    sent_pps: f64,
    /// The generator thread's CPU time per second of wall clock.
    generator_busy: f64,
    /// Received by the server's socket, per second (`--sink udp`).
    received_pps: Option<f64>,
    /// `--router-cpu`: how that CPU's time split (`/proc/stat`), as
    /// fractions: user (other jobs), system (the NAPI kthread), softirq,
    /// idle, steal.
    router_split: Option<[f64; 5]>,
}

fn measure(lab: &Lab, args: &Args, size: usize, mode: Mode) -> Result<Sample> {
    let dst_mac = match mode {
        Mode::Baseline => NOBODY_MAC,
        Mode::Kernel | Mode::Ebpf => R1_MAC,
    };
    let frames = frames(size, args.flows, dst_mac);
    let generator_kind = args.generator();
    let stop = AtomicBool::new(false);
    let ready = AtomicBool::new(args.sink == Sink::L2);
    let received = AtomicU64::new(0);
    std::thread::scope(|s| -> Result<Sample> {
        let sink =
            (args.sink == Sink::Udp).then(|| s.spawn(|| sink(lab, &received, &stop, &ready)));
        while !ready.load(Ordering::Acquire) {
            if sink.as_ref().is_some_and(|t| t.is_finished()) {
                bail!("the sink stopped before it started");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let started = Instant::now();
        let (f_start, soft_start, router_start, runnable_start) = (
            lab.forwarded(mode)?,
            ksoftirqd0(),
            lab.router_cpu_time(),
            lab.router_runnable(),
        );
        let rx_start = lab.counter("r1", "rx_packets")?;
        let stat_start = args.router_cpu.and_then(|cpu| Some((cpu, cpu_stat(cpu)?)));
        let dropped_start = lab.counter("r2", "tx_dropped")?;
        let generator = s.spawn(|| match generator_kind {
            Generator::Xdp => generate_xdp(lab, mode, &frames[0], args, &stop),
            Generator::AfPacket => generate(lab, &frames, args.batch(), &stop),
        });
        std::thread::sleep(args.warmup());
        let (t0, f0, r0) = (
            Instant::now(),
            lab.forwarded(mode)?,
            received.load(Ordering::Relaxed),
        );
        std::thread::sleep(Duration::from_secs(args.seconds));
        let (t1, f1, r1) = (
            Instant::now(),
            lab.forwarded(mode)?,
            received.load(Ordering::Relaxed),
        );
        stop.store(true, Ordering::Relaxed);
        let (sent, cpu) = generator
            .join()
            .map_err(|_| anyhow::anyhow!("generator panicked"))??;
        let total = started.elapsed().as_secs_f64();
        let runnable = lab.router_runnable().saturating_sub(runnable_start);
        let generator_busy = cpu.as_secs_f64() / total;
        let cpu = match lab.router_napi {
            Some(_) => lab.router_cpu_time().saturating_sub(router_start),
            None => cpu + ksoftirqd0().saturating_sub(soft_start),
        };
        // Let the rings drain, then check that r2 sent what r1 received:
        // GRO merged nothing and the router dropped nothing.
        std::thread::sleep(Duration::from_millis(100));
        let f_end = lab.forwarded(mode)?;
        let rx = lab.counter("r1", "rx_packets")? - rx_start;
        if mode != Mode::Baseline && (f_end - f_start) < rx - rx / 1000 {
            eprintln!(
                "note: {}: r1 received {rx} packets, r2 transmitted {} (r2 tx_dropped {})",
                mode.name(),
                f_end - f_start,
                lab.counter("r2", "tx_dropped")? - dropped_start
            );
        }
        if let Some(sink) = sink {
            sink.join()
                .map_err(|_| anyhow::anyhow!("sink panicked"))??;
        }
        let secs = (t1 - t0).as_secs_f64();
        Ok(Sample {
            pps: f1.saturating_sub(f0) as f64 / secs,
            per_cpu_pps: f_end.saturating_sub(f_start) as f64 / cpu.as_secs_f64().max(1e-3),
            busy: cpu.as_secs_f64() / total,
            runnable: runnable.as_secs_f64() / total,
            sent_pps: sent as f64 / total,
            generator_busy,
            received_pps: (args.sink == Sink::Udp).then(|| (r1 - r0) as f64 / secs),
            router_split: args
                .router_cpu
                .and_then(|cpu| Some(split(&stat_start.as_ref()?.1, &cpu_stat(cpu)?))),
        })
    })
}

impl Args {
    fn batch(&self) -> usize {
        self.batch.unwrap_or(match self.generator() {
            Generator::Xdp => 16,
            Generator::AfPacket => 64,
        })
    }

    /// Before the measured seconds: time for the XDP generator to settle on
    /// its rate.
    fn warmup(&self) -> Duration {
        match self.generator() {
            Generator::Xdp => Duration::from_secs(2),
            Generator::AfPacket => Duration::from_secs(1),
        }
    }

    fn generator(&self) -> Generator {
        self.generator.unwrap_or(match self.router_cpu {
            Some(_) => Generator::Xdp,
            None => Generator::AfPacket,
        })
    }
}

/// A CPU's line of `/proc/stat`: user, nice, system, idle, iowait, irq,
/// softirq, steal (ticks).
fn cpu_stat(cpu: usize) -> Option<[u64; 8]> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat
        .lines()
        .find(|l| l.split_whitespace().next() == Some(&format!("cpu{cpu}")))?;
    let mut f = line.split_whitespace().skip(1).map(|x| x.parse().ok());
    let mut out = [0u64; 8];
    for v in &mut out {
        *v = f.next()??;
    }
    Some(out)
}

/// The shares of user (+nice), system (+irq), softirq, idle (+iowait) and
/// steal between two `cpu_stat` readings.
fn split(a: &[u64; 8], b: &[u64; 8]) -> [f64; 5] {
    let d: Vec<f64> = a
        .iter()
        .zip(b)
        .map(|(x, y)| y.saturating_sub(*x) as f64)
        .collect();
    let total = d.iter().sum::<f64>().max(1.0);
    [
        (d[0] + d[1]) / total,
        (d[2] + d[5]) / total,
        d[6] / total,
        (d[3] + d[4]) / total,
        d[7] / total,
    ]
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split(' ')
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len().max(1) as f64
}

fn main() -> Result<()> {
    let args = Args::parse();
    if let (Some(netns), Some(frame)) = (&args.xdp_child_netns, &args.xdp_child_frame) {
        return xdp_child(&args, netns, &hex_decode(frame)?);
    }
    if !nix::unistd::Uid::effective().is_root() {
        bail!("run as root: it creates network namespaces and loads a BPF program");
    }
    if args
        .router_cpu
        .is_some_and(|c| c == GENERATOR_CPU || c >= num_cpus())
    {
        bail!(
            "--router-cpu: a CPU other than {GENERATOR_CPU}, below {}",
            num_cpus()
        );
    }
    if args.generator() == Generator::Xdp && args.router_cpu.is_none() {
        bail!(
            "--generator xdp needs --router-cpu: veth takes XDP frames only into a NAPI ring, \
             which GRO at r1 provides; use --generator af-packet without it"
        );
    }
    let lab = Lab::new(args.sink, args.router_cpu, args.router_nice)?;
    let mut router = Router::load().context("loading the BPF router")?;
    println!(
        "{} CPUs, load average {}; generator ({}) on CPU {GENERATOR_CPU}{}{}; {} flows, batches of {}, {} s per run after {} s warm-up",
        num_cpus(),
        loadavg(),
        args.generator().describe(),
        match args.router_cpu {
            Some(cpu) => format!(
                ", router (r1's threaded NAPI) on CPU {cpu}, s0's NAPI on CPU {GENERATOR_CPU}"
            ),
            None => String::new(),
        },
        match (args.sink, args.router_cpu) {
            (Sink::Udp, None) => ", UDP sink on CPU 1",
            (Sink::Udp, Some(_)) => ", UDP sink on CPU 0",
            (Sink::L2, _) => ", server discards at L2",
        },
        args.flows,
        args.batch(),
        args.seconds,
        args.warmup().as_secs()
    );
    println!();
    println!(
        "| frame (B) | mode | forwarded Mpps, each run | mean | best | Gbit/s (best) | Mpps per CPU-second (mean) | µs CPU per packet | CPU busy (mean) | sink received Mpps (mean) |"
    );
    println!("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut summary = Vec::new();
    let mut notes = Vec::new();
    for &size in &args.sizes {
        let mut results: Vec<(Mode, Vec<Sample>)> = vec![
            (Mode::Baseline, Vec::new()),
            (Mode::Kernel, Vec::new()),
            (Mode::Ebpf, Vec::new()),
        ];
        for _ in 0..args.rounds {
            for (mode, samples) in &mut results {
                if *mode == Mode::Ebpf {
                    attach(&lab, &mut router, true)?;
                }
                let before = router.counters()?;
                let sample = measure(&lab, &args, size, *mode);
                if *mode == Mode::Ebpf {
                    attach(&lab, &mut router, false)?;
                }
                let sample = sample?;
                let d = router.counters()?.since(&before);
                match mode {
                    Mode::Ebpf if d.get(Outcome::Redirected) == 0 => {
                        bail!("the program forwarded nothing: {d:?}")
                    }
                    Mode::Kernel | Mode::Baseline if d.total() != 0 => {
                        bail!("program still attached")
                    }
                    Mode::Kernel if lab.conntrack_entries()? == 0 => {
                        bail!("conntrack saw no flows in kernel mode")
                    }
                    _ => {}
                }
                samples.push(sample);
            }
        }
        let mut figures = Vec::new();
        for (mode, samples) in &results {
            let pps: Vec<f64> = samples.iter().map(|s| s.pps).collect();
            let (m, best) = (mean(&pps), pps.iter().copied().fold(0.0, f64::max));
            let per_cpu = mean(&samples.iter().map(|s| s.per_cpu_pps).collect::<Vec<_>>());
            figures.push((m, best, per_cpu));
            let sent = mean(&samples.iter().map(|s| s.sent_pps).collect::<Vec<_>>());
            match args.generator() {
                // Offering more than the router takes is the point.
                Generator::Xdp => notes.push(format!(
                    "{size} B, {}: the generator offered {:.3} Mpps, on the CPU {:.0} % of the time",
                    mode.name(),
                    sent / 1e6,
                    100.0 * mean(&samples.iter().map(|s| s.generator_busy).collect::<Vec<_>>())
                )),
                Generator::AfPacket if sent > m * 1.05 => eprintln!(
                    "note: {} lost {:.0} % of what was sent",
                    mode.name(),
                    100.0 * (1.0 - m / sent)
                ),
                Generator::AfPacket => {}
            }
            if let (Some(cpu), Some(splits)) = (
                args.router_cpu,
                samples
                    .iter()
                    .map(|s| s.router_split)
                    .collect::<Option<Vec<_>>>(),
            ) {
                let share =
                    |i: usize| 100.0 * mean(&splits.iter().map(|s| s[i]).collect::<Vec<_>>());
                notes.push(format!(
                    "{size} B, {}: CPU {cpu} (/proc/stat) user {:.0} %, system {:.0} %, softirq {:.0} %, idle {:.0} %, steal {:.0} %",
                    mode.name(),
                    share(0),
                    share(1),
                    share(2),
                    share(3),
                    share(4)
                ));
            }
            let busy = mean(&samples.iter().map(|s| s.busy).collect::<Vec<_>>());
            let runnable = mean(&samples.iter().map(|s| s.runnable).collect::<Vec<_>>());
            println!(
                "| {size} | {} | {} | {:.3} | {:.3} | {:.2} | **{:.3}** | {:.2} | {:.0} %{} | {} |",
                mode.name(),
                pps.iter()
                    .map(|p| format!("{:.3}", p / 1e6))
                    .collect::<Vec<_>>()
                    .join(", "),
                m / 1e6,
                best / 1e6,
                best * size as f64 * 8.0 / 1e9,
                per_cpu / 1e6,
                1e6 / per_cpu.max(1.0),
                busy * 100.0,
                if args.router_cpu.is_some() {
                    format!(" (runnable {:.0} %)", runnable * 100.0)
                } else {
                    String::new()
                },
                samples
                    .iter()
                    .map(|s| s.received_pps)
                    .collect::<Option<Vec<_>>>()
                    .map_or("-".to_owned(), |r| format!("{:.3}", mean(&r) / 1e6)),
            );
        }
        let ratio = |f: fn(&(f64, f64, f64)) -> f64| f(&figures[2]) / f(&figures[1]).max(1.0);
        // The router's own cost per packet: a mode's less the baseline's.
        let us = |f: &(f64, f64, f64)| 1e6 / f.2.max(1.0);
        let own = |i: usize| (us(&figures[i]) - us(&figures[0])).max(1e-3);
        summary.push((
            size,
            ratio(|f| f.2),
            ratio(|f| f.0),
            ratio(|f| f.1),
            (own(1), own(2)),
        ));
    }
    println!();
    for note in notes {
        println!("- {note}");
    }
    println!();
    println!("load average at the end: {}", loadavg());
    for (size, per_cpu, mean_ratio, best_ratio, (kernel_us, ebpf_us)) in summary {
        print!(
            "{size}-byte frames: tc-eBPF / kernel = {per_cpu:.2}x per CPU-second; wall clock {mean_ratio:.2}x (means), {best_ratio:.2}x (best runs)"
        );
        // With a router core the baseline's frames go through `ip_rcv`,
        // which forwarded frames skip: no floor to subtract.
        if args.router_cpu.is_none() {
            print!(
                "; the forwarding's own CPU cost (less the baseline): kernel {kernel_us:.2} µs, tc-eBPF {ebpf_us:.2} µs per packet ({:.2}x)",
                kernel_us / ebpf_us
            );
        }
        println!();
    }
    Ok(())
}

/// Attaches to (or detaches from) r1 and r2, from inside the router namespace.
fn attach(lab: &Lab, router: &mut Router, on: bool) -> Result<()> {
    std::thread::scope(|s| {
        s.spawn(move || -> Result<()> {
            setns(File::open(lab.router.path())?, CloneFlags::CLONE_NEWNET)?;
            for dev in ["r1", "r2"] {
                if on {
                    router.attach(dev)?;
                } else {
                    router.detach(dev)?;
                }
            }
            Ok(())
        })
        .join()
        .map_err(|_| anyhow::anyhow!("attach thread panicked"))?
    })
}
