//! The agent's gateway (D5): Ingresses routed to Services through the node's proxy. The
//! gateway itself ([`slipway_gateway`]) knows nothing of the cluster; this module feeds it
//! every Ingress and lets it reach Services as pods do, through [`slipway_net::Proxy`].

use std::collections::BTreeMap;
use std::sync::Arc;

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
    let gateway = Arc::new(Gateway::new(
        Arc::new(slipway_net::ProxyUpstream(proxy)),
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
