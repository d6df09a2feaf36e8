//! The node's network readiness over the Kubernetes API: the taints go from
//! the Node's `spec.taints` (a JSON merge patch of the list read minus ours,
//! with the read `resourceVersion` as precondition, so a taint another
//! client adds meanwhile is never lost: a conflict reads again), and the
//! `PodpeerNetworkReady` condition is set through `nodes/status` by
//! server-side apply (the Node's conditions are a list-map keyed by type:
//! the kubelet's conditions stay untouched).

use std::sync::Mutex;

use k8s_openapi::api::core::v1::{Node, NodeCondition, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, Resource};
use serde_json::json;
use tracing::{debug, info};

use crate::health::NodeReadiness;

/// The Node condition podpeer-node sets.
pub const CONDITION_TYPE: &str = "PodpeerNetworkReady";

/// How often a taint removal reads again after a conflict.
const ATTEMPTS: usize = 5;

/// Taints and the condition of one Node, over the API.
pub struct KubeReadiness {
    nodes: Api<Node>,
    node: String,
    manager: String,
    /// The condition's status and transition time as last written.
    last: Mutex<Option<(String, Time)>>,
}

impl std::fmt::Debug for KubeReadiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeReadiness")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl KubeReadiness {
    /// For the Node `node`, writing as field manager `manager`.
    pub fn new(client: Client, node: &str, manager: &str) -> Self {
        KubeReadiness {
            nodes: Api::all(client),
            node: node.to_owned(),
            manager: manager.to_owned(),
            last: Mutex::new(None),
        }
    }

    /// The transition time for a condition now `status`: kept while the
    /// status stays, from the Node itself after a restart.
    async fn transition_time(&self, status: &str) -> Time {
        let last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        match last {
            Some((s, t)) if s == status => t,
            Some(_) => now,
            None => {
                let existing = self.nodes.get(&self.node).await.ok().and_then(|n| {
                    n.status?
                        .conditions?
                        .into_iter()
                        .find(|c| c.type_ == CONDITION_TYPE && c.status == status)?
                        .last_transition_time
                });
                existing.unwrap_or(now)
            }
        }
    }
}

fn api_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

impl NodeReadiness for KubeReadiness {
    async fn remove_taints(&self, taints: &[String]) -> Result<(), String> {
        for _ in 0..ATTEMPTS {
            let node = self
                .nodes
                .get(&self.node)
                .await
                .map_err(|e| format!("reading node {}: {e}", self.node))?;
            let present: Vec<Taint> = node
                .spec
                .as_ref()
                .and_then(|s| s.taints.clone())
                .unwrap_or_default();
            let (gone, keep): (Vec<Taint>, Vec<Taint>) =
                present.into_iter().partition(|t| taints.contains(&t.key));
            if gone.is_empty() {
                debug!(node = self.node, "no taint to remove");
                return Ok(());
            }
            let patch = json!({
                "metadata": {"resourceVersion": node.meta().resource_version},
                "spec": {"taints": keep},
            });
            match self
                .nodes
                .patch(&self.node, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    let keys: Vec<&str> = gone.iter().map(|t| t.key.as_str()).collect();
                    info!(node = self.node, removed = ?keys, "network ready: taints removed");
                    return Ok(());
                }
                Err(e) if api_code(&e) == Some(409) => {
                    debug!(node = self.node, "node changed meanwhile; reading it again");
                }
                Err(e) => return Err(format!("removing taints of node {}: {e}", self.node)),
            }
        }
        Err(format!(
            "node {} kept changing: taints not removed after {ATTEMPTS} attempts",
            self.node
        ))
    }

    async fn set_condition(&self, ready: bool, reason: &str, message: &str) -> Result<(), String> {
        let status = if ready { "True" } else { "False" };
        let since = self.transition_time(status).await;
        let condition = NodeCondition {
            type_: CONDITION_TYPE.into(),
            status: status.into(),
            reason: Some(reason.into()),
            message: Some(message.into()),
            last_transition_time: Some(since.clone()),
            last_heartbeat_time: None,
        };
        let body = json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": self.node},
            "status": {"conditions": [condition]},
        });
        self.nodes
            .patch_status(
                &self.node,
                &PatchParams::apply(&self.manager).force(),
                &Patch::Apply(&body),
            )
            .await
            .map_err(|e| {
                format!(
                    "setting condition {CONDITION_TYPE} of node {}: {e}",
                    self.node
                )
            })?;
        *self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((status.into(), since));
        info!(
            node = self.node,
            status, reason, message, "node condition {CONDITION_TYPE}"
        );
        Ok(())
    }
}
