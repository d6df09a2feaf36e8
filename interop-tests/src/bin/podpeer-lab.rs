//! podpeer-lab: the whole system in network namespaces, told step by step.
//!
//! Builds a fabric router (FRR), a node running podpeer-node, three pods
//! running podpeer-sidecar beside a small HTTP server, and a client behind the
//! fabric; shows the VIP announced, the hijack refused, the ECMP route, the
//! client's requests spread over the pods, and a pod's health check taking it
//! out. Then it stays up for exploration until Ctrl-C (or exits with
//! `--check`), and removes everything it made, also after an error.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use podpeer_interop_tests::podlab::{
    self, FABRIC_IP, HIJACK, NODE_IP, Options, PodLab, VIP, VIP_TABLE,
};
use podpeer_interop_tests::skip_reason;

/// Runs the podpeer lab: pods announcing a VIP through podpeer-sidecar, a node
/// guarding and installing it with podpeer-node, a fabric router (FRR) and a
/// client, all in network namespaces. Needs root and the podpeer binaries;
/// the fabric is FRR where installed, else a bgp-core speaker (`scripts/lab.sh` builds them and runs this).
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Run the story, then exit 0 if every step held and 1 if not, instead of
    /// staying up for exploration.
    #[arg(long)]
    check: bool,
    /// How many pods announce the VIP (2 to 9).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(2..=9))]
    pods: u8,
    /// Where podpeer-node and podpeer-sidecar are (default: next to this
    /// program, or $PODPEER_BIN_DIR).
    #[arg(long)]
    bin_dir: Option<std::path::PathBuf>,
    /// How many HTTP requests the client sends to the VIP.
    #[arg(long, default_value_t = 30)]
    requests: usize,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(why) = skip_reason(&[]) {
        eprintln!("podpeer-lab cannot run: {why}");
        return ExitCode::FAILURE;
    }
    let stop = Arc::new(AtomicBool::new(false));
    watch_signals(Arc::clone(&stop));
    match run(&args, &stop) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\n✗ {e}");
            eprintln!("(everything the lab made has been removed)");
            ExitCode::FAILURE
        }
    }
}

/// Sets `stop` on SIGINT or SIGTERM, from a thread of its own, so that every
/// step can end early and the guards clean up.
fn watch_signals(stop: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            let Ok(mut term) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            else {
                return;
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        });
        stop.store(true, Ordering::Relaxed);
    });
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

struct Story<'a> {
    stop: &'a AtomicBool,
    step: usize,
    started: Instant,
}

impl Story<'_> {
    fn step(&mut self, title: &str) -> Result<()> {
        if self.stop.load(Ordering::Relaxed) {
            return Err("interrupted".into());
        }
        self.step += 1;
        println!(
            "\n[{:>5.1}s] {}. {title}",
            self.started.elapsed().as_secs_f64(),
            self.step
        );
        Ok(())
    }
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("      {l}\n"))
        .collect::<String>()
}

fn run(args: &Args, stop: &AtomicBool) -> Result<()> {
    let mut story = Story {
        stop,
        step: 0,
        started: Instant::now(),
    };
    let pods = usize::from(args.pods);
    story.step("Building the lab in network namespaces")?;
    let mut lab = PodLab::start(Options {
        pods,
        bin_dir: args.bin_dir.clone(),
        ..Options::default()
    })?;
    println!(
        "      client {} ── fabric ({}, AS {}) {} ── {} node (podpeer-node, AS {}) ── bridge \"pods\"",
        podlab::CLIENT_IP,
        lab.fabric.kind(),
        podlab::FABRIC_AS,
        FABRIC_IP,
        NODE_IP,
        podlab::NODE_AS
    );
    for p in &lab.pods {
        println!(
            "      {} {} (podpeer-sidecar + HTTP server, namespace {})",
            p.name,
            p.ip,
            p.ns.name()
        );
    }
    println!(
        "      every pod announces {VIP}/32; {} also tries {HIJACK}, kube-dns's service address",
        lab.pods[pods - 1].name
    );

    story.step("Waiting for the BGP sessions")?;
    let took = lab.wait_sessions(Duration::from_secs(60))?;
    println!(
        "      all up in {:.1}s: the sidecars found the node by their default gateway",
        took.as_secs_f64()
    );
    print!("{}", indent(&lab.node_cli(&["peers"])?));

    story.step(&format!("The node accepts {VIP}/32 from every pod"))?;
    let all: Vec<usize> = (0..pods).collect();
    lab.wait_next_hops(&all, Duration::from_secs(30))?;
    println!(
        "      ip -n {} route show table {VIP_TABLE}:",
        lab.node_ns.name()
    );
    print!(
        "{}",
        indent(
            &lab.node_ns
                .ip(&["route", "show", "table", &VIP_TABLE.to_string()])?
        )
    );
    println!("      one kernel route, a next hop per pod (ECMP), protocol 201 = podpeer");

    story.step(&format!("The hijack of {HIJACK} is refused"))?;
    let peers = lab.node_peers()?;
    let hijacker = lab.pods[pods - 1].ip.to_string();
    let peer = podlab::peer_list(&peers)
        .into_iter()
        .find(|p| p["address"] == hijacker.as_str())
        .ok_or("the hijacking pod is not among the node's peers")?;
    println!("      {}: {}", hijacker, describe_rejection(&peer));
    let anywhere = lab
        .node_ns
        .ip(&["route", "show", "table", "all", "10.96.0.10"])?;
    if !anywhere.trim().is_empty() || lab.fabric_route("10.96.0.10")?.is_some() {
        return Err(format!("{HIJACK} reached a routing table: {anywhere}").into());
    }
    println!("      not in any table of the node, not sent to the fabric; the session stays up");

    story.step("The fabric learns the VIP from the node")?;
    let deadline = Instant::now() + Duration::from_secs(20);
    let via = loop {
        if let Some(via) = lab.fabric_route(VIP)? {
            break via;
        }
        if Instant::now() > deadline {
            return Err(format!("the fabric has no route to {VIP}").into());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    if via != [NODE_IP] {
        return Err(format!("the fabric routes {VIP} via {via:?}, not the node").into());
    }
    print!("{}", indent(&lab.fabric.show(&format!("{VIP}/32"))?));

    story.step(&format!(
        "The client sends {} HTTP requests to {VIP}",
        args.requests
    ))?;
    let before = bpf_forwarded(&lab);
    let answers = lab.client_requests(args.requests)?;
    for (pod, n) in &answers {
        println!("      {pod:>5} answered {n:>3}");
    }
    if answers.len() < 2 {
        return Err("the requests did not spread over the pods".into());
    }
    match (before, bpf_forwarded(&lab)) {
        (Some(b), Some(a)) if a > b => println!(
            "      the node's tc-eBPF router forwarded {} of their packets from the fabric \
             interface to the pods, past netfilter and conntrack",
            a - b
        ),
        (Some(_), Some(_)) => {
            return Err("the node's tc-eBPF router forwarded none of the requests".into());
        }
        _ => println!("      (the node's tc-eBPF router is not loaded: the kernel forwarded them)"),
    }

    let victim = 1;
    let name = lab.pods[victim].name.clone();
    story.step(&format!(
        "{name}'s HTTP server stops: its health check fails"
    ))?;
    let t = Instant::now();
    lab.stop_http(victim);
    let rest: Vec<usize> = all.iter().copied().filter(|&i| i != victim).collect();
    lab.wait_next_hops(&rest, Duration::from_secs(20))?;
    println!(
        "      {name}'s next hop left the node's kernel route {:.2}s after its server stopped",
        t.elapsed().as_secs_f64()
    );
    print!(
        "{}",
        indent(
            &lab.node_ns
                .ip(&["route", "show", "table", &VIP_TABLE.to_string()])?
        )
    );
    let answers = lab.client_requests(args.requests)?;
    println!(
        "      the client's requests now reach {:?}",
        answers.keys().collect::<Vec<_>>()
    );
    if answers.contains_key(&name) {
        return Err(format!("{name} still answers requests to the VIP").into());
    }
    lab.start_http(victim)?;
    lab.wait_next_hops(&all, Duration::from_secs(20))?;
    println!("      its server back, {name} is a next hop again");

    println!(
        "\n✓ every step held ({:.1}s)",
        story.started.elapsed().as_secs_f64()
    );
    if args.check {
        return Ok(());
    }
    explore(&lab);
    while !stop.load(Ordering::Relaxed) {
        lab.check_processes()?;
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("\nstopping: removing the namespaces");
    Ok(())
}

/// Packets the node's tc-eBPF router redirected so far, when it is loaded.
fn bpf_forwarded(lab: &PodLab) -> Option<u64> {
    let out = lab.node_cli(&["status", "--json"]).ok()?;
    let status: serde_json::Value = serde_json::from_str(&out).ok()?;
    let bpf = &status["bpf"];
    if bpf["state"] != "loaded" {
        return None;
    }
    let p = &bpf["packets"];
    Some(p["redirected"].as_u64()? + p["redirected_neigh"].as_u64()?)
}

fn describe_rejection(peer: &serde_json::Value) -> String {
    let last = &peer["lastRejection"];
    if last.is_object() {
        format!(
            "{} rejected: {}",
            last["prefix"].as_str().unwrap_or("?"),
            last["detail"]
                .as_str()
                .or(last["reason"].as_str())
                .unwrap_or("?")
        )
    } else {
        format!("rejections: {}", peer["rejected"])
    }
}

fn explore(lab: &PodLab) {
    let n = lab.node_ns.name();
    let node = lab.bins.node.display();
    let sidecar = lab.bins.sidecar.display();
    let pod1 = lab.pods[0].ns.name();
    println!(
        "\nThe lab stays up. Look around from another terminal:
  ip netns exec {n} {node} status            # the node, like `show bgp summary`
  ip netns exec {n} {node} peers             # peers, received/accepted/rejected by reason
  ip netns exec {n} {node} routes            # installed routes and their next hops
  ip -n {n} route show table {VIP_TABLE}                 # the kernel's ECMP route
  ip -n {n} rule                                # the table reached from the fabric
  ip netns exec {pod1} {sidecar} status        # a sidecar's session and VIPs
  ip netns exec {} curl -s http://{VIP}/   # the VIP from the client
{}  logs and configurations: {}
Press Ctrl-C to stop and remove everything.",
        lab.client.name(),
        match lab.fabric.dir() {
            Some(d) => format!(
                "  ip netns exec {} vtysh --vty_socket {} -c 'show ip bgp'\n",
                lab.fabric_ns.name(),
                d.display()
            ),
            None => String::new(),
        },
        lab.dir().display()
    );
}
