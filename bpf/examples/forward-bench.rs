//! Forwarding throughput of a router namespace: the kernel's forward path
//! (conntrack plus an nftables ruleset) against the tc-eBPF router, in one run.
//!
//! ```text
//! client c0 --veth-- r1 [router: forwarding, conntrack, nft] r2 --veth-- s0 server
//! ```
//!
//! The client writes prebuilt Ethernet frames (UDP over IPv4, `--flows`
//! source ports) with `sendmmsg` on an `AF_PACKET` socket, so no client IP
//! stack sits in the measurement. What counts is what the router forwarded:
//! the packets r2 transmitted (its `tx_packets`), per second. Behind r2,
//! `--sink udp` (default) has the server receive them on a UDP socket
//! (`recvmmsg` on CPU 1); `--sink l2` addresses them to a MAC the server does
//! not have, so it discards them on arrival and the figure is the router's
//! alone. The generator is pinned to CPU 0. By default, on veth, the
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
//! Two figures per run: packets per second of wall-clock time (what other
//! jobs on a shared machine take from the CPU lowers it), and packets per
//! second of CPU actually spent on them, the steadier one when the machine is
//! busy: by default the generator thread's CPU time (which includes the
//! softirq work done in its context) plus ksoftirqd/0's; with `--router-cpu`
//! the router core's, the NAPI kthread's plus that CPU's ksoftirqd's.
//!
//! Run as root: `cargo run --release -p podpeer-bpf --example forward-bench
//! -- --sink l2 --router-cpu 1`.

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
    /// Frames per sendmmsg call.
    #[arg(long, default_value_t = 64)]
    batch: usize,
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
}

fn mac(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

impl Lab {
    fn new(sink: Sink, router_cpu: Option<usize>) -> Result<Self> {
        let mut lab = Self {
            client: Netns::new("bc")?,
            router: Netns::new("br")?,
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

    fn counter(&self, dev: &str, stat: &str) -> Result<u64> {
        let n = self
            .router
            .exec(&["cat", &format!("/sys/class/net/{dev}/statistics/{stat}")])?;
        Ok(n.trim().parse()?)
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
            f.extend_from_slice(&(10_000 + flow).to_be_bytes());
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
    /// Written by the generator, per second.
    sent_pps: f64,
    /// Received by the server's socket, per second (`--sink udp`).
    received_pps: Option<f64>,
}

fn measure(lab: &Lab, args: &Args, size: usize, mode: Mode) -> Result<Sample> {
    let dst_mac = match mode {
        Mode::Baseline => NOBODY_MAC,
        Mode::Kernel | Mode::Ebpf => R1_MAC,
    };
    let frames = frames(size, args.flows, dst_mac);
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
        let dropped_start = lab.counter("r2", "tx_dropped")?;
        let generator = s.spawn(|| generate(lab, &frames, args.batch, &stop));
        std::thread::sleep(Duration::from_secs(1));
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
            received_pps: (args.sink == Sink::Udp).then(|| (r1 - r0) as f64 / secs),
        })
    })
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
    let lab = Lab::new(args.sink, args.router_cpu)?;
    let mut router = Router::load().context("loading the BPF router")?;
    println!(
        "{} CPUs, load average {}; generator on CPU {GENERATOR_CPU}{}{}; {} flows, sendmmsg batches of {}, {} s per run after 1 s warm-up",
        num_cpus(),
        loadavg(),
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
        args.batch,
        args.seconds
    );
    println!();
    println!(
        "| frame (B) | mode | forwarded Mpps, each run | mean | best | Gbit/s (best) | Mpps per CPU-second (mean) | µs CPU per packet | CPU busy (mean) | sink received Mpps (mean) |"
    );
    println!("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut summary = Vec::new();
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
            if sent > m * 1.05 {
                eprintln!(
                    "note: {} lost {:.0} % of what was sent",
                    mode.name(),
                    100.0 * (1.0 - m / sent)
                );
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
