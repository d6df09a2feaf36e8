//! The router on real traffic: client - router - server namespaces, with the
//! router namespace forwarding but its kernel forward path dropped by an
//! nftables chain, so anything that gets through went through the program.
//! The watcher runs on a thread inside the router namespace, as podpeer-node
//! runs it on the host. Needs root, `ip`, `nft`, `ping`; skipped otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use interop_tests::{Netns, skip_unless_runnable, veth};
use podpeer_bpf::watcher::lock;
use podpeer_bpf::{AttachMode, BpfError, Counters, Hook, Outcome, Router, SharedRouter, Watcher};

const BINARIES: &[&str] = &["nft", "ping"];

/// client (10.10.1.2, fd10:1::2) - r1 [router] r2 - server (10.10.2.2, fd10:2::2)
struct Lab {
    client: Netns,
    router: Netns,
    server: Netns,
}

const SERVER4: &str = "10.10.2.2";
const SERVER6: &str = "fd10:2::2";

impl Lab {
    fn new() -> Self {
        let client = Netns::new("c").unwrap();
        let router = Netns::new("r").unwrap();
        let server = Netns::new("s").unwrap();
        veth(
            &client,
            "c0",
            &["10.10.1.2/24", "fd10:1::2/64"],
            &router,
            "r1",
            &["10.10.1.1/24", "fd10:1::1/64"],
        )
        .unwrap();
        let lab = Self {
            client,
            router,
            server,
        };
        lab.server_link();
        lab.client
            .ip(&["route", "add", "default", "via", "10.10.1.1"])
            .unwrap();
        lab.client
            .ip(&["-6", "route", "add", "default", "via", "fd10:1::1"])
            .unwrap();
        lab.router
            .exec(&[
                "sysctl",
                "-qw",
                "net.ipv4.ip_forward=1",
                "net.ipv6.conf.all.forwarding=1",
            ])
            .unwrap();
        // The kernel's forward path is closed: only the program forwards.
        for cmd in [
            "add table inet f",
            "add chain inet f drop_forward { type filter hook forward priority 0; policy drop; }",
        ] {
            let mut argv = vec!["nft"];
            argv.extend(cmd.split(' '));
            lab.router.exec(&argv).unwrap();
        }
        lab.wait_for_neighbors();
        lab
    }

    /// Fresh links answer neighbor solicitations only after a moment: wait
    /// until both hosts reach the router itself (local traffic, no
    /// forwarding involved), so a failed ping later means the forwarding.
    fn wait_for_neighbors(&self) {
        for (ns, addr) in [
            (&self.client, "10.10.1.1"),
            (&self.client, "fd10:1::1"),
            (&self.server, "10.10.2.1"),
            (&self.server, "fd10:2::1"),
        ] {
            let deadline = Instant::now() + Duration::from_secs(10);
            while ns
                .exec(&["ping", "-c", "1", "-W", "1", "-n", addr])
                .is_err()
            {
                assert!(
                    Instant::now() < deadline,
                    "{} cannot reach {addr}",
                    ns.name()
                );
            }
        }
    }

    /// (Re-)creates the router-server link, as after an interface came back.
    fn server_link(&self) {
        veth(
            &self.router,
            "r2",
            &["10.10.2.1/24", "fd10:2::1/64"],
            &self.server,
            "s0",
            &["10.10.2.2/24", "fd10:2::2/64"],
        )
        .unwrap();
        self.server
            .ip(&["route", "replace", "default", "via", "10.10.2.1"])
            .unwrap();
        self.server
            .ip(&["-6", "route", "replace", "default", "via", "fd10:2::1"])
            .unwrap();
    }

    /// One ping from the client; its output when answered.
    fn ping(&self, args: &[&str]) -> Result<String, String> {
        let out = self
            .client
            .command("ping")
            .args(["-c", "1", "-W", "1", "-n"])
            .args(args)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            Ok(text)
        } else {
            Err(text)
        }
    }

    /// Whether `dst` answers, with a few tries: a lost first packet on a
    /// loaded machine (or an ARP/ND exchange just starting) is not a failure.
    fn pings(&self, dst: &str) -> bool {
        (0..3).any(|_| self.ping(&[dst]).is_ok())
    }

    /// Whether `dst` answers one ping: for the checks that it does not.
    fn pings_once(&self, dst: &str) -> bool {
        self.ping(&[dst]).is_ok()
    }

    /// A TCP connection from the client to the server, with data both ways.
    fn tcp(&self, addr: SocketAddr) -> bool {
        let listener = in_netns(&self.server, move || TcpListener::bind(addr).unwrap());
        let server = std::thread::spawn(move || {
            listener.set_nonblocking(false).unwrap();
            let (mut s, _) = listener.accept().ok()?;
            s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
            let mut buf = [0u8; 5];
            s.read_exact(&mut buf).ok()?;
            s.write_all(b"world").ok()?;
            Some(buf)
        });
        let ok = in_netns(&self.client, move || {
            let Ok(mut c) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
                return false;
            };
            c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            let mut buf = [0u8; 5];
            c.write_all(b"hello").is_ok() && c.read_exact(&mut buf).is_ok() && &buf == b"world"
        });
        if !ok {
            // Unblock the accept: connect from inside the server namespace.
            in_netns(&self.server, move || {
                let _ = TcpStream::connect_timeout(&addr, Duration::from_secs(1));
            });
        }
        let got = server.join().unwrap();
        ok && got == Some(*b"hello")
    }
}

/// Runs `f` on a thread inside `ns`.
fn in_netns<T: Send>(ns: &Netns, f: impl FnOnce() -> T + Send) -> T {
    let path = ns.path();
    std::thread::scope(|s| {
        s.spawn(move || {
            nix::sched::setns(
                File::open(path).unwrap(),
                nix::sched::CloneFlags::CLONE_NEWNET,
            )
            .unwrap();
            f()
        })
        .join()
        .unwrap()
    })
}

/// A watcher running on its own thread inside the router namespace.
struct Running {
    router: SharedRouter,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<(), BpfError>>>,
}

impl Running {
    /// Only link events can re-attach: the periodic re-read is an hour away.
    fn start(ns: &Netns, mode: AttachMode, interfaces: &[&str]) -> Self {
        let router: SharedRouter = Arc::new(Mutex::new(Router::load_with(mode).unwrap()));
        let watcher = Watcher::new(router.clone(), interfaces.iter().copied())
            .resync_every(Duration::from_secs(3600));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let path = ns.path();
        let thread = std::thread::spawn(move || {
            nix::sched::setns(
                File::open(path).unwrap(),
                nix::sched::CloneFlags::CLONE_NEWNET,
            )
            .unwrap();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(watcher.run(async {
                let _ = stopped.await;
            }))
        });
        let running = Self {
            router,
            stop: Some(stop),
            thread: Some(thread),
        };
        let n = interfaces.len();
        running.wait_attached(|a| a.len() == n, "attached to every interface");
        running
    }

    fn counters(&self) -> Counters {
        lock(&self.router).counters().unwrap()
    }

    fn attachments(&self) -> Vec<podpeer_bpf::Attachment> {
        lock(&self.router).attachments()
    }

    fn wait_attached(&self, done: impl Fn(&[podpeer_bpf::Attachment]) -> bool, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done(&self.attachments()) {
            assert!(Instant::now() < deadline, "timed out waiting: {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap().unwrap();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // Detaching happens on the watcher's thread, inside the namespace.
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[test]
fn traffic_passes_only_while_the_program_is_attached() {
    skip_unless_runnable!(BINARIES);
    let lab = Lab::new();
    let tcp4: SocketAddr = format!("{SERVER4}:7001").parse().unwrap();
    let tcp6: SocketAddr = format!("[{SERVER6}]:7002").parse().unwrap();

    assert!(
        !lab.pings_once(SERVER4),
        "the forward chain drops without the program"
    );
    assert!(!lab.pings_once(SERVER6));
    assert!(!lab.tcp(tcp4));

    let mut running = Running::start(&lab.router, AttachMode::Auto, &["r1", "r2"]);
    // This kernel has TCX; AttachMode::Auto uses it.
    assert!(running.attachments().iter().all(|a| a.hook == Hook::Tcx));
    let before = running.counters();
    assert!(lab.pings(SERVER4), "IPv4 ping through the program");
    assert!(lab.pings(SERVER6), "IPv6 ping through the program");
    assert!(lab.tcp(tcp4), "IPv4 TCP through the program");
    assert!(lab.tcp(tcp6), "IPv6 TCP through the program");
    let d = running.counters().since(&before);
    // Two pings and two TCP exchanges, both directions.
    assert!(d.forwarded() >= 4 + 2 * 6, "{d:?}");
    assert_eq!(d.get(Outcome::PassError), 0);

    running.stop();
    assert!(running.attachments().is_empty());
    assert!(!lab.pings_once(SERVER4), "dropped again once detached");
    assert!(!lab.pings_once(SERVER6));
    assert!(!lab.tcp(tcp6));
}

#[test]
fn clsact_filters_forward_too_and_are_removed() {
    skip_unless_runnable!(BINARIES);
    let lab = Lab::new();
    let mut running = Running::start(&lab.router, AttachMode::Clsact, &["r1", "r2"]);
    assert!(running.attachments().iter().all(|a| a.hook == Hook::Clsact));
    let filters = lab
        .router
        .exec(&["tc", "filter", "show", "dev", "r1", "ingress"])
        .unwrap();
    assert!(filters.contains("podpeer_router"), "{filters}");

    assert!(lab.pings(SERVER4));
    assert!(lab.pings(SERVER6));
    assert!(lab.tcp(format!("{SERVER4}:7003").parse().unwrap()));

    running.stop();
    let filters = lab
        .router
        .exec(&["tc", "filter", "show", "dev", "r1", "ingress"])
        .unwrap();
    assert!(!filters.contains("podpeer_router"), "{filters}");
    assert!(!lab.pings_once(SERVER4));
}

#[test]
fn a_missing_neighbor_is_resolved_through_redirect_neigh() {
    skip_unless_runnable!(BINARIES);
    let lab = Lab::new();
    let running = Running::start(&lab.router, AttachMode::Auto, &["r1", "r2"]);
    assert!(lab.pings(SERVER4));
    assert!(lab.pings(SERVER6));

    for _ in 0..2 {
        // The router forgets both ends' MACs; the first packet each way goes
        // through the kernel's neighbor code, the next ones straight.
        for dev in ["r1", "r2"] {
            lab.router.ip(&["neigh", "flush", "dev", dev]).unwrap();
            lab.router
                .ip(&["-6", "neigh", "flush", "dev", dev])
                .unwrap();
        }
        let before = running.counters();
        assert!(lab.pings(SERVER4), "passes while the neighbor is resolved");
        assert!(lab.pings(SERVER6));
        let d = running.counters().since(&before);
        assert!(d.get(Outcome::RedirectedNeigh) >= 2, "{d:?}");
        let shown = lab.router.ip(&["neigh", "show", "dev", "r2"]).unwrap();
        assert!(shown.contains(SERVER4), "the kernel resolved it: {shown}");
    }
}

#[test]
fn ttl_expiry_is_answered_by_the_kernel() {
    skip_unless_runnable!(BINARIES);
    let lab = Lab::new();
    let running = Running::start(&lab.router, AttachMode::Auto, &["r1", "r2"]);
    let before = running.counters();
    let answer = lab.ping(&["-t", "1", SERVER4]).unwrap_err();
    assert!(
        answer.contains("From 10.10.1.1") && answer.contains("Time to live exceeded"),
        "{answer}"
    );
    let answer = lab.ping(&["-t", "1", SERVER6]).unwrap_err();
    assert!(
        answer.contains("From fd10:1::1") && answer.contains("Time exceeded: Hop limit"),
        "{answer}"
    );
    let d = running.counters().since(&before);
    assert_eq!(d.get(Outcome::PassTtl), 2, "{d:?}");
    assert!(lab.pings(SERVER4), "TTL 64 still goes through");
}

#[test]
fn an_interface_deleted_and_recreated_gets_the_program_back() {
    skip_unless_runnable!(BINARIES);
    let lab = Lab::new();
    let running = Running::start(&lab.router, AttachMode::Auto, &["r1", "r2"]);
    assert!(lab.pings(SERVER4));
    let old = lock(&running.router).attached_ifindex("r2").unwrap();

    lab.router.ip(&["link", "del", "r2"]).unwrap();
    running.wait_attached(|a| a.iter().all(|a| a.ifname != "r2"), "r2 forgotten");
    assert!(!lab.pings_once(SERVER4));

    lab.server_link();
    lab.wait_for_neighbors();
    running.wait_attached(
        |a| a.iter().any(|a| a.ifname == "r2" && a.ifindex != old),
        "r2 attached again at its new index",
    );
    let before = running.counters();
    assert!(lab.pings(SERVER4), "traffic passes again");
    assert!(lab.pings(SERVER6));
    assert!(lab.tcp(format!("{SERVER4}:7004").parse().unwrap()));
    assert!(running.counters().since(&before).forwarded() >= 4);
}

/// An 802.1Q-tagged frame on the wire: the kernel moves the tag into the skb
/// before tc sees it (`vlan_present`), the program routes the packet and
/// sends it on untagged.
#[test]
fn a_vlan_tagged_frame_is_forwarded_untagged() {
    use nix::sys::socket::{
        AddressFamily, MsgFlags, SockFlag, SockType, SockaddrLike, bind, send, socket,
    };
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;

    skip_unless_runnable!(BINARIES);
    let lab = Lab::new();
    let r1_mac: Vec<u8> = lab
        .router
        .exec(&["cat", "/sys/class/net/r1/address"])
        .unwrap()
        .trim()
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect();
    let running = Running::start(&lab.router, AttachMode::Auto, &["r1", "r2"]);
    assert!(lab.pings(SERVER4), "neighbors known both ways");

    let server = in_netns(&lab.server, || {
        let s = UdpSocket::bind("10.10.2.2:7005").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        s
    });

    // Ethernet, tag (VLAN 100), IPv4 UDP 10.10.1.2 -> 10.10.2.2:7005.
    let payload = b"tagged";
    let mut ip = vec![
        0x45,
        0,
        0,
        (20 + 8 + payload.len()) as u8,
        0,
        1,
        0x40,
        0,
        64,
        17,
        0,
        0,
    ];
    ip.extend_from_slice(&[10, 10, 1, 2, 10, 10, 2, 2]);
    let sum = ip
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum::<u32>();
    let sum = !(((sum & 0xffff) + (sum >> 16)) as u16);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    ip.extend_from_slice(&[0x9c, 0x40, 0x1b, 0x5d, 0, (8 + payload.len()) as u8, 0, 0]);
    ip.extend_from_slice(payload);
    let mut frame = r1_mac;
    frame.extend_from_slice(&[
        0x02, 0, 0, 0, 0x0a, 0x99, 0x81, 0x00, 0x00, 0x64, 0x08, 0x00,
    ]);
    frame.extend_from_slice(&ip);

    let before = running.counters();
    in_netns(&lab.client, || {
        let link = nix::ifaddrs::getifaddrs()
            .unwrap()
            .filter(|a| a.interface_name == "c0")
            .filter_map(|a| a.address)
            .find(|a| a.family() == Some(AddressFamily::Packet))
            .unwrap();
        let fd = socket(
            AddressFamily::Packet,
            SockType::Raw,
            SockFlag::empty(),
            None,
        )
        .unwrap();
        bind(fd.as_raw_fd(), link.as_link_addr().unwrap()).unwrap();
        send(fd.as_raw_fd(), &frame, MsgFlags::empty()).unwrap();
    });
    let mut buf = [0u8; 64];
    let (n, from) = server.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], payload);
    assert_eq!(from.ip().to_string(), "10.10.1.2");
    let d = running.counters().since(&before);
    assert_eq!(d.forwarded(), 1, "{d:?}");
}
