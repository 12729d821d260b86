//! The agent's gateway (D5): Ingresses routed to Services through the node's proxy. The
//! gateway itself ([`slipway_gateway`]) knows nothing of the cluster; this module feeds it
//! every Ingress, lets it reach Services as pods do, through [`slipway_net::Proxy`], and
//! tells the platform of requests for previews (`/slipway/v1/previews/{ns}/touch`), which
//! keeps them awake and wakes those asleep.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use k8s_openapi::api::networking::v1::Ingress;
use kube::Client;
use kube::api::Api;
use slipway_gateway::Gateway;
use slipway_net::Proxy;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::network::{Key, follow};

/// Serves the gateway on `listener` until `stop`, its routes following the cluster's
/// Ingresses.
pub(crate) async fn serve(
    client: Client,
    proxy: Proxy,
    listener: TcpListener,
    stop: CancellationToken,
) {
    let touch = Arc::new(Touch {
        client: client.clone(),
        sent: Mutex::new(HashMap::new()),
    });
    let gateway = Arc::new(Gateway::with_activity(
        Arc::new(slipway_net::ProxyUpstream(proxy)),
        Some(touch as Arc<dyn slipway_gateway::Activity>),
        slipway_gateway::Options::default(),
    ));
    let routes = {
        let gateway = Arc::clone(&gateway);
        let ingresses = Arc::new(std::sync::Mutex::new(BTreeMap::<Key, Ingress>::new()));
        let (set, remove) = (Arc::clone(&ingresses), ingresses);
        let (g1, g2) = (Arc::clone(&gateway), gateway);
        follow(
            Api::<Ingress>::all(client),
            move |i: &Ingress| {
                let mut all = set
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                all.insert(crate::network::key(i), i.clone());
                g1.set_ingresses(&all.values().cloned().collect::<Vec<_>>());
            },
            move |key: &Key| {
                let mut all = remove
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                all.remove(key);
                g2.set_ingresses(&all.values().cloned().collect::<Vec<_>>());
            },
            None,
            stop.clone(),
        )
    };
    let serving = gateway.serve(listener, stop.clone());
    let (_, served) = tokio::join!(routes, serving);
    if let Err(e) = served {
        tracing::error!(error = %e, "the gateway stopped");
    }
}

/// How often a namespace's requests are reported while its app answers: the platform's idle
/// clock counts in hours, so a minute is plenty.
const REPORT_EVERY: Duration = Duration::from_secs(60);
/// How often a held request may ask again for its app to wake.
const WAKE_EVERY: Duration = Duration::from_secs(2);

/// Reports requests to the platform, each namespace at most once per interval, in the
/// background: a request never waits for the report.
struct Touch {
    client: Client,
    sent: Mutex<HashMap<String, Instant>>,
}

impl slipway_gateway::Activity for Touch {
    fn request(&self, namespace: &str, waiting: bool) {
        let every = if waiting { WAKE_EVERY } else { REPORT_EVERY };
        {
            let mut sent = self.sent.lock().unwrap_or_else(PoisonError::into_inner);
            let now = Instant::now();
            if sent
                .get(namespace)
                .is_some_and(|at| now.duration_since(*at) < every)
            {
                return;
            }
            sent.insert(namespace.to_owned(), now);
        }
        let client = self.client.clone();
        let path = format!("/slipway/v1/previews/{namespace}/touch");
        tokio::spawn(async move {
            let request = http::Request::post(&path)
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(b"{}".to_vec());
            let result = match request {
                Ok(request) => client.request_text(request).await.map(drop),
                Err(e) => {
                    tracing::debug!(error = %e, "building a touch");
                    return;
                }
            };
            if let Err(e) = result {
                tracing::debug!(%path, error = %e, "reporting a request to the platform");
            }
        });
    }
}
