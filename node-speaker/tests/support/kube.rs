//! The node's Kubernetes peer source and speaker, as `k8s::run` sets them
//! up, against the API server double (no kernel: no FIB loop runs).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bgp_core::speaker::{Speaker, SpeakerConfig};
use clap::Parser;
use podpeer_node::daemon::App;
use podpeer_node::k8s::{self, Options, Source};

use super::apiserver::ApiServer;
use super::free_port;

#[derive(Parser)]
struct Flags {
    #[command(flatten)]
    options: Options,
}

/// The node side of a test: node `n1`, BGP on a free loopback port.
pub struct Node {
    /// The daemon's state (speaker, configuration, readiness).
    pub app: Arc<App>,
    /// Its BGP port on 127.0.0.1.
    pub port: u16,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Drop for Node {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts the node against `api` with `--debounce debounce`. With
/// `not_ready`, the node is not ready for that reason until its source's
/// first reconcile clears it: a test can tell that it is over.
pub async fn start_node(api: &ApiServer, debounce: &str, not_ready: Option<&str>) -> Node {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let url = api.url();
    let flags = Flags::parse_from([
        "test",
        "--peer-source",
        "kubernetes",
        "--node-name",
        "n1",
        "--api-server",
        &url,
        "--debounce",
        debounce,
        "--status-interval",
        "300ms",
        "--bgp-listen",
        &listen,
        "--http-listen",
        "127.0.0.1:9",
    ]);
    let client = k8s::client(&flags.options).await.unwrap();
    let waiting = Mutex::new(String::new());
    let (source, config) = tokio::time::timeout(
        Duration::from_secs(20),
        Source::start(client, flags.options, &waiting),
    )
    .await
    .expect("the source starts")
    .unwrap();
    let mut sc = SpeakerConfig::new(config.local_as, config.router_id);
    sc.listen = config.listen.clone();
    let speaker = Speaker::start(sc).await.unwrap();
    let app = Arc::new(App::new(Arc::new(config), speaker, None));
    // No kernel here: nothing of an earlier run to reconcile.
    app.reconciled
        .store(true, std::sync::atomic::Ordering::Relaxed);
    if let Some(why) = not_ready {
        *app.source_not_ready.lock().unwrap() = Some(why.into());
    }
    let task = tokio::spawn(source.run(Arc::clone(&app)));
    Node { app, port, task }
}
