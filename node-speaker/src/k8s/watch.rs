//! The watches: one reflector (list, then watch from the list's
//! resourceVersion, with bookmarks) per kind, each feeding a local store.
//! A watch that breaks is resumed from its last resourceVersion; one that
//! is too old (`410 Gone`) lists again and the store is replaced whole when
//! the new list is complete, so a resync looks like any other change: the
//! reconciler compares, and an established session whose pod is still there
//! is not touched.
//!
//! Pods are watched on this node only (`spec.nodeName=<node>`); the rest
//! cluster-wide: PodPeerings, NodeBGPConfigs, Nodes (pod CIDRs, addresses,
//! our labels), Namespaces (namespace selectors), Services (cluster IPs)
//! and, where the cluster has them (Kubernetes 1.33 and later),
//! ServiceCIDRs; and the Secrets labelled `podpeer.io/bgp-password=true`
//! (TCP-MD5 keys, see [`super::secret`]), so a rotated key is applied as
//! soon as it is written.

use std::fmt::Debug;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::ServiceCIDR;
use kube::api::ListParams;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::Notify;
use tracing::{debug, info, warn};

use super::crd::{NodeBGPConfig, PodPeering};
use super::model::Snapshot;
use super::secret;

/// The stores the watches keep current.
#[derive(Clone)]
pub struct Stores {
    nodes: Store<Node>,
    pods: Store<Pod>,
    namespaces: Store<Namespace>,
    peerings: Store<PodPeering>,
    node_configs: Store<NodeBGPConfig>,
    services: Store<Service>,
    service_cidrs: Option<Store<ServiceCIDR>>,
    secrets: Store<Secret>,
}

impl Stores {
    /// Starts the watches; `changed` is notified on every change (and on
    /// each completed resync). ServiceCIDRs are watched only when a first
    /// list shows the cluster serves them.
    pub async fn start(client: &Client, node_name: &str, changed: &Arc<Notify>) -> Self {
        let cidr_api: Api<ServiceCIDR> = Api::all(client.clone());
        let service_cidrs = match cidr_api.list(&ListParams::default().limit(1)).await {
            Ok(_) => Some(spawn(
                "servicecidrs",
                cidr_api,
                watcher::Config::default(),
                changed,
            )),
            Err(kube::Error::Api(s)) if s.code == 404 => {
                info!(
                    "no ServiceCIDR API (Kubernetes before 1.33): service CIDRs from the flag or NodeBGPConfig"
                );
                None
            }
            Err(e) => {
                warn!("cannot list ServiceCIDRs, not watching them: {e}");
                None
            }
        };
        let pods = watcher::Config::default().fields(&format!("spec.nodeName={node_name}"));
        Self {
            nodes: spawn(
                "nodes",
                Api::all(client.clone()),
                watcher::Config::default(),
                changed,
            ),
            pods: spawn("pods", Api::all(client.clone()), pods, changed),
            namespaces: spawn(
                "namespaces",
                Api::all(client.clone()),
                watcher::Config::default(),
                changed,
            ),
            peerings: spawn(
                "podpeerings",
                Api::all(client.clone()),
                watcher::Config::default(),
                changed,
            ),
            node_configs: spawn(
                "nodebgpconfigs",
                Api::all(client.clone()),
                watcher::Config::default(),
                changed,
            ),
            services: spawn(
                "services",
                Api::all(client.clone()),
                watcher::Config::default(),
                changed,
            ),
            service_cidrs,
            secrets: spawn(
                "secrets",
                Api::all(client.clone()),
                watcher::Config::default().labels(&secret::label_selector()),
                changed,
            ),
        }
    }

    /// Waits until every store has had its first complete list.
    pub async fn ready(&self) {
        let _ = tokio::join!(
            self.nodes.wait_until_ready(),
            self.pods.wait_until_ready(),
            self.namespaces.wait_until_ready(),
            self.peerings.wait_until_ready(),
            self.node_configs.wait_until_ready(),
            self.services.wait_until_ready(),
            self.secrets.wait_until_ready(),
        );
        if let Some(s) = &self.service_cidrs {
            let _ = s.wait_until_ready().await;
        }
    }

    /// What the stores hold now.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            nodes: self.nodes.state(),
            pods: self.pods.state(),
            namespaces: self.namespaces.state(),
            peerings: self.peerings.state(),
            node_configs: self.node_configs.state(),
            services: self.services.state(),
            service_cidrs: self
                .service_cidrs
                .as_ref()
                .map(Store::state)
                .unwrap_or_default(),
            secrets: secret::index(self.secrets.state().iter().map(|s| &**s)),
        }
    }
}

fn spawn<K>(
    kind: &'static str,
    api: Api<K>,
    config: watcher::Config,
    changed: &Arc<Notify>,
) -> Store<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let changed = Arc::clone(changed);
    let stream = watcher(api, config).default_backoff().reflect(writer);
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(
                    watcher::Event::Apply(_) | watcher::Event::Delete(_) | watcher::Event::InitDone,
                ) => {
                    changed.notify_one();
                }
                Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => {}
                Err(e) => warn!(kind, "watch failed, resuming: {e}"),
            }
        }
        debug!(kind, "watch ended");
    });
    reader
}
