//! Network namespaces that live as long as their guard, and veth links.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A network namespace named `pp-<pid>-<n>-<tag>`, with `lo` up and IPv6
/// duplicate address detection off. Dropping it kills whatever still runs in it
/// and deletes it.
pub struct Netns {
    name: String,
}

/// Runs a command to completion; its stdout, or an error with its stderr.
pub(crate) fn run(cmd: &mut Command) -> io::Result<String> {
    let out = cmd.stdin(Stdio::null()).output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{cmd:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Netns {
    /// Creates a namespace; `tag` ends its name (a few characters: `a`, `b`).
    pub fn new(tag: &str) -> io::Result<Self> {
        static SWEEP: Once = Once::new();
        SWEEP.call_once(sweep_stale);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("pp-{}-{n}-{tag}", std::process::id());
        run(Command::new("ip").args(["netns", "add", &name]))?;
        // From here on the guard removes it, also when the setup fails.
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        ns.exec(&[
            "sysctl",
            "-qw",
            "net.ipv6.conf.all.accept_dad=0",
            "net.ipv6.conf.default.accept_dad=0",
        ])?;
        Ok(ns)
    }

    /// Its name, for `ip netns exec`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file that pins it, for `setns`.
    pub fn path(&self) -> PathBuf {
        PathBuf::from("/var/run/netns").join(&self.name)
    }

    /// A command that runs `program` inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// Runs `argv` inside the namespace to completion; its stdout.
    pub fn exec(&self, argv: &[&str]) -> io::Result<String> {
        run(self.command(argv[0]).args(&argv[1..]))
    }

    /// `ip -n NAME ARGS`.
    pub fn ip(&self, args: &[&str]) -> io::Result<String> {
        run(Command::new("ip").args(["-n", &self.name]).args(args))
    }

    /// The link-local address of `ifname`, once the kernel has given it one
    /// (waiting up to 5 s).
    pub fn link_local(&self, ifname: &str) -> io::Result<Ipv6Addr> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let out = self.ip(&["-6", "-o", "addr", "show", "dev", ifname, "scope", "link"])?;
            let found = out
                .split_whitespace()
                .skip_while(|w| *w != "inet6")
                .nth(1)
                .and_then(|a| a.split('/').next())
                .and_then(|a| a.parse().ok());
            if let Some(a) = found {
                return Ok(a);
            }
            if Instant::now() >= deadline {
                return Err(io::Error::other(format!(
                    "no link-local address on {ifname} in {}",
                    self.name
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A `TcpExt` counter of the namespace's `/proc/net/netstat` (its name
    /// without the prefix, e.g. `TCPMD5Failure`); `None` when the kernel has
    /// no such counter.
    pub fn tcp_ext(&self, name: &str) -> Option<u64> {
        let text = self.exec(&["cat", "/proc/net/netstat"]).ok()?;
        let lines: Vec<&str> = text.lines().collect();
        lines.chunks(2).find_map(|pair| {
            let [names, values] = pair else { return None };
            let names = names.strip_prefix("TcpExt:")?;
            let values = values.strip_prefix("TcpExt:")?;
            names
                .split_whitespace()
                .zip(values.split_whitespace())
                .find(|(n, _)| *n == name)
                .and_then(|(_, v)| v.parse().ok())
        })
    }

    /// `GET path` from `127.0.0.1:port` inside the namespace (a daemon's
    /// HTTP server there): the status code and the body; `None` when nothing
    /// answers.
    pub fn http_get(&self, port: u16, path: &str) -> Option<(u16, String)> {
        use std::io::{Read, Write};
        let nspath = self.path();
        let path = path.to_owned();
        // A thread of its own: setns changes the calling thread only.
        std::thread::spawn(move || {
            let f = std::fs::File::open(&nspath).ok()?;
            nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).ok()?;
            let addr = std::net::SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
            s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
            write!(
                s,
                "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
            )
            .ok()?;
            let mut text = String::new();
            s.read_to_string(&mut text).ok()?;
            let status = text.split_whitespace().nth(1)?.parse().ok()?;
            let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
            Some((status, body))
        })
        .join()
        .ok()
        .flatten()
    }

    /// The processes whose main thread is in the namespace (never this one).
    pub fn pids(&self) -> Vec<i32> {
        let Ok(me) = std::fs::metadata(self.path()) else {
            return Vec::new();
        };
        let own = std::process::id() as i32;
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .filter(|&pid| pid != own)
            .filter(|pid| {
                std::fs::metadata(format!("/proc/{pid}/ns/net"))
                    .is_ok_and(|m| m.dev() == me.dev() && m.ino() == me.ino())
            })
            .collect()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // The daemon guards stop what they started; this catches the rest.
        let mut pids = self.pids();
        for &p in &pids {
            let _ = kill(Pid::from_raw(p), Signal::SIGTERM);
            let _ = kill(Pid::from_raw(p), Signal::SIGCONT);
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while !pids.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            pids.retain(|p| std::path::Path::new(&format!("/proc/{p}")).exists());
        }
        for &p in &pids {
            let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
        }
        if let Err(e) = run(Command::new("ip").args(["netns", "del", &self.name])) {
            eprintln!("cannot delete namespace {}: {e}", self.name);
        }
    }
}

/// Removes what an earlier run killed by a signal (no guard ran) left behind:
/// namespaces named `pp-<pid>-<n>-<tag>` whose process is gone, and whatever
/// still runs in them.
fn sweep_stale() {
    let Ok(list) = run(Command::new("ip").args(["netns", "list"])) else {
        return;
    };
    for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
        let parts: Vec<&str> = name.split('-').collect();
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if parts.len() != 4 || parts[0] != "pp" || !digits(parts[1]) || !digits(parts[2]) {
            continue;
        }
        let alive = parts[1] == std::process::id().to_string()
            || std::path::Path::new(&format!("/proc/{}", parts[1])).exists();
        if !alive {
            eprintln!("removing namespace {name} left by an earlier run");
            drop(Netns {
                name: name.to_string(),
            });
        }
    }
}

/// Joins `a` and `b` with a veth pair (`a_if` in `a`, `b_if` in `b`), gives
/// each end its addresses (`10.0.0.1/24`, `fd00::1/64`, ...) and brings both up.
pub fn veth(
    a: &Netns,
    a_if: &str,
    a_addrs: &[&str],
    b: &Netns,
    b_if: &str,
    b_addrs: &[&str],
) -> io::Result<()> {
    run(Command::new("ip").args([
        "link", "add", a_if, "netns", &a.name, "type", "veth", "peer", "name", b_if, "netns",
        &b.name,
    ]))?;
    for (ns, ifname, addrs) in [(a, a_if, a_addrs), (b, b_if, b_addrs)] {
        for addr in addrs {
            let mut args = vec!["addr", "add", addr, "dev", ifname];
            if addr.contains(':') {
                args.push("nodad");
            }
            ns.ip(&args)?;
        }
        ns.ip(&["link", "set", ifname, "up"])?;
    }
    Ok(())
}

/// Two namespaces joined by one link: `ours` (for the bgp-core speaker) at
/// `10.99.N.1/24` and `fd99:N::1/64`, `theirs` (for the daemon) at `.2` and `::2`.
/// Dropped, `theirs` goes first, then `ours`.
pub struct Lab {
    /// The daemon's namespace.
    pub theirs: Netns,
    /// Our namespace.
    pub ours: Netns,
    /// The subnet index N.
    pub index: u8,
}

impl Lab {
    /// Creates the pair for subnet index `index` (unique per test, so two
    /// tests never share an address even in their own namespaces).
    pub fn new(index: u8) -> io::Result<Self> {
        let ours = Netns::new("a")?;
        let theirs = Netns::new("b")?;
        let lab = Self {
            theirs,
            ours,
            index,
        };
        let (a4, a6) = (
            format!("{}/24", lab.our_v4()),
            format!("{}/64", lab.our_v6()),
        );
        let (b4, b6) = (
            format!("{}/24", lab.their_v4()),
            format!("{}/64", lab.their_v6()),
        );
        veth(
            &lab.ours,
            "to-b",
            &[&a4, &a6],
            &lab.theirs,
            "to-a",
            &[&b4, &b6],
        )?;
        // Addresses are usable at once (no DAD); wait for the carrier.
        let deadline = Instant::now() + Duration::from_secs(5);
        for (ns, ifname) in [(&lab.ours, "to-b"), (&lab.theirs, "to-a")] {
            while !ns.ip(&["-o", "link", "show", ifname])?.contains("state UP") {
                if Instant::now() > deadline {
                    return Err(io::Error::other(format!(
                        "{ifname} in {} did not come up",
                        ns.name()
                    )));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        Ok(lab)
    }

    /// Our IPv4 address.
    pub fn our_v4(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 99, self.index, 1)
    }

    /// The daemon's IPv4 address.
    pub fn their_v4(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 99, self.index, 2)
    }

    /// Our IPv6 address.
    pub fn our_v6(&self) -> Ipv6Addr {
        Ipv6Addr::new(0xfd99, u16::from(self.index), 0, 0, 0, 0, 0, 1)
    }

    /// The daemon's IPv6 address.
    pub fn their_v6(&self) -> Ipv6Addr {
        Ipv6Addr::new(0xfd99, u16::from(self.index), 0, 0, 0, 0, 0, 2)
    }

    /// The daemon's IPv4 address as an `IpAddr` (what our neighbor list shows).
    pub fn their_ip(&self) -> IpAddr {
        IpAddr::V4(self.their_v4())
    }

    /// The IPv4 subnet of the link.
    pub fn subnet_v4(&self) -> ipnet::IpNet {
        ipnet::IpNet::V4(
            ipnet::Ipv4Net::new(Ipv4Addr::new(10, 99, self.index, 0), 24).unwrap_or_default(),
        )
    }
}
