//! Events as Kubernetes' event recorder writes them: core/v1 Events about an object, with a
//! repeat of the same reason and message for the same object folded into the first one
//! (`count` and `lastTimestamp`), as the recorder's aggregation does. The API server gives
//! every Event a time to live. Recording never fails a reconcile: an Event that cannot be
//! written is dropped, as Kubernetes drops them.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{Event, ObjectReference};
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::sync::Mutex;

/// Repeats remembered for folding; past this, memory starts over (the next repeat of a
/// forgotten one is a new Event, which loses nothing a reader needs).
const REMEMBERED: usize = 4096;

/// Normal or Warning, Kubernetes' two event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Something worked as it should.
    Normal,
    /// Something a user may need to act on.
    Warning,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Normal => "Normal",
            Kind::Warning => "Warning",
        }
    }
}

type Repeat = (String, Kind, String, String);

/// Writes Events for one component.
pub struct Recorder {
    client: Client,
    component: &'static str,
    /// (object uid, kind, reason, message) to the Event's namespace, name and count.
    seen: Mutex<HashMap<Repeat, (String, String, i32)>>,
}

impl Recorder {
    /// A recorder that signs its Events as `component` (`replicaset-controller`, ...).
    pub fn new(client: Client, component: &'static str) -> Self {
        Recorder {
            client,
            component,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Records that `reason` happened to `object`.
    pub async fn record(&self, object: &ObjectReference, kind: Kind, reason: &str, message: &str) {
        let now = k8s_openapi::jiff::Timestamp::now();
        let repeat = (
            object.uid.clone().unwrap_or_default(),
            kind,
            reason.to_owned(),
            message.to_owned(),
        );
        // The lock is never held across a request, so a component's Events are written
        // concurrently; two repeats racing may each write an Event, which loses nothing.
        let known = self.seen.lock().await.get(&repeat).cloned();
        if let Some((namespace, name, count)) = known {
            let events: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
            let patch = json!({"count": count + 1, "lastTimestamp": now.to_string()});
            match events
                .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                .await
            {
                Ok(_) => {
                    if let Some(entry) = self.seen.lock().await.get_mut(&repeat) {
                        entry.2 = entry.2.max(count + 1);
                    }
                    return;
                }
                // Expired or deleted: write a new one.
                Err(kube::Error::Api(status)) if status.code == 404 => {
                    self.seen.lock().await.remove(&repeat);
                }
                Err(e) => {
                    tracing::debug!(error = %e, reason, "dropping an event");
                    return;
                }
            }
        }
        let namespace = object.namespace.clone().unwrap_or_else(|| "default".into());
        let name = format!(
            "{}.{:x}",
            object.name.as_deref().unwrap_or("object"),
            now.as_nanosecond()
        );
        let event: Event = match serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": object,
            "type": kind.as_str(),
            "reason": reason,
            "message": message,
            "count": 1,
            "firstTimestamp": now.to_string(),
            "lastTimestamp": now.to_string(),
            "source": {"component": self.component},
            "reportingComponent": self.component,
            "reportingInstance": self.component,
        })) {
            Ok(event) => event,
            Err(e) => {
                tracing::debug!(error = %e, reason, "dropping an event");
                return;
            }
        };
        let events: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        match events.create(&PostParams::default(), &event).await {
            Ok(_) => {
                let mut seen = self.seen.lock().await;
                if seen.len() >= REMEMBERED {
                    seen.clear();
                }
                seen.insert(repeat, (namespace, name, 1));
            }
            Err(e) => tracing::debug!(error = %e, reason, "dropping an event"),
        }
    }
}
