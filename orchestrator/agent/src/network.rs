//! The agent's side of pod networking (D5): it feeds the Service proxy ([`slipway_net`])
//! with the cluster's Services and Endpoints and with where the other nodes' tunnels
//! listen, and serves this node's tunnel. The proxy does the rest.

use std::collections::HashSet;
use std::fmt::Debug;
use std::net::{IpAddr, SocketAddr};

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{Endpoints, Node, Service};
use kube::api::Api;
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Client, Resource, ResourceExt as _};
use serde::de::DeserializeOwned;
use slipway_net::Proxy;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

/// The Node annotation that says which port the node's tunnel listens on (at its
/// InternalIP).
pub const TUNNEL_PORT_ANNOTATION: &str = "slipway.dev/tunnel-port";

/// An object's namespace and name.
pub(crate) type Key = (String, String);

pub(crate) fn key<K: Resource>(object: &K) -> Key {
    (object.namespace().unwrap_or_default(), object.name_any())
}

/// Follows every object of a kind, handing each change to `apply` or `remove`; after a
/// relist, objects that vanished meanwhile are removed. `synced` fires after the first list.
pub(crate) async fn follow<K>(
    api: Api<K>,
    mut apply: impl FnMut(&K) + Send,
    mut remove: impl FnMut(&Key) + Send,
    mut synced: Option<oneshot::Sender<()>>,
    stop: CancellationToken,
) where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let mut events = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut known: HashSet<Key> = HashSet::new();
    let mut listing: HashSet<Key> = HashSet::new();
    loop {
        let event = tokio::select! {
            () = stop.cancelled() => return,
            event = events.next() => event,
        };
        match event {
            None => return,
            Some(Err(e)) => tracing::debug!(error = %e, "a network watch failed; it restarts"),
            Some(Ok(watcher::Event::Init)) => listing.clear(),
            Some(Ok(watcher::Event::InitApply(object))) => {
                listing.insert(key(&object));
                apply(&object);
            }
            Some(Ok(watcher::Event::InitDone)) => {
                for gone in known.difference(&listing) {
                    remove(gone);
                }
                known = std::mem::take(&mut listing);
                if let Some(synced) = synced.take() {
                    let _ = synced.send(());
                }
            }
            Some(Ok(watcher::Event::Apply(object))) => {
                known.insert(key(&object));
                apply(&object);
            }
            Some(Ok(watcher::Event::Delete(object))) => {
                let gone = key(&object);
                known.remove(&gone);
                remove(&gone);
            }
        }
    }
}

/// Where a Node's tunnel listens, from its InternalIP and annotation.
fn tunnel_of(node: &Node) -> Option<SocketAddr> {
    let port: u16 = node
        .annotations()
        .get(TUNNEL_PORT_ANNOTATION)?
        .parse()
        .ok()?;
    let ip: IpAddr = node
        .status
        .as_ref()?
        .addresses
        .iter()
        .flatten()
        .find(|a| a.type_ == "InternalIP")?
        .address
        .parse()
        .ok()?;
    Some(SocketAddr::new(ip, port))
}

/// Keeps the proxy current until `stop`; `synced` fires once Services are listed, so pods
/// started after it get the variables of every Service that exists.
pub(crate) async fn watch(
    client: Client,
    proxy: Proxy,
    synced: oneshot::Sender<()>,
    stop: CancellationToken,
) {
    let services = {
        let (set, remove) = (proxy.clone(), proxy.clone());
        follow(
            Api::<Service>::all(client.clone()),
            move |s: &Service| set.set_service(s),
            move |(ns, name): &Key| remove.remove_service(ns, name),
            Some(synced),
            stop.clone(),
        )
    };
    let endpoints = {
        let (set, remove) = (proxy.clone(), proxy.clone());
        follow(
            Api::<Endpoints>::all(client.clone()),
            move |e: &Endpoints| set.set_endpoints(e),
            move |(ns, name): &Key| remove.remove_endpoints(ns, name),
            None,
            stop.clone(),
        )
    };
    let nodes = {
        let (set, remove) = (proxy.clone(), proxy);
        follow(
            Api::<Node>::all(client),
            move |n: &Node| set.set_tunnel(&n.name_any(), tunnel_of(n)),
            move |(_, name): &Key| remove.set_tunnel(name, None),
            None,
            stop,
        )
    };
    tokio::join!(services, endpoints, nodes);
}
