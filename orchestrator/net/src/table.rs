//! What the proxy knows about Services and their ready endpoints, and how it picks one for
//! a new connection: round robin over ready addresses, or the same address again for a
//! client while its ClientIP affinity lasts. No IO here, so it is tested on its own.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Endpoints, Service};

/// Kubernetes' default ClientIP affinity timeout (three hours).
const DEFAULT_AFFINITY: Duration = Duration::from_secs(10_800);

/// A Service as the proxy sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceInfo {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its ClusterIP; `None` for headless Services, which get no listener.
    pub cluster_ip: Option<Ipv4Addr>,
    /// Its TCP ports (other protocols are not proxied).
    pub ports: Vec<PortInfo>,
    /// How long a client keeps its endpoint (sessionAffinity ClientIP).
    pub affinity: Option<Duration>,
}

/// One port of a Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortInfo {
    /// The port's name, empty for a single unnamed port.
    pub name: String,
    /// The port on the ClusterIP.
    pub port: u16,
    /// The port on the node's address, for NodePort Services.
    pub node_port: Option<u16>,
}

impl ServiceInfo {
    /// Reads what the proxy needs from a Service.
    pub fn from_service(service: &Service) -> Option<ServiceInfo> {
        let spec = service.spec.as_ref()?;
        let cluster_ip = spec
            .cluster_ip
            .as_deref()
            .and_then(|ip| ip.parse::<Ipv4Addr>().ok());
        let node_ports = matches!(spec.type_.as_deref(), Some("NodePort" | "LoadBalancer"));
        let ports = spec
            .ports
            .iter()
            .flatten()
            .filter(|p| p.protocol.as_deref().unwrap_or("TCP") == "TCP")
            .filter_map(|p| {
                Some(PortInfo {
                    name: p.name.clone().unwrap_or_default(),
                    port: u16::try_from(p.port).ok()?,
                    node_port: p
                        .node_port
                        .filter(|_| node_ports)
                        .and_then(|n| u16::try_from(n).ok()),
                })
            })
            .collect();
        let affinity = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
            spec.session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds)
                .and_then(|s| u64::try_from(s).ok())
                .map_or(DEFAULT_AFFINITY, Duration::from_secs)
        });
        Some(ServiceInfo {
            namespace: service.metadata.namespace.clone()?,
            name: service.metadata.name.clone()?,
            cluster_ip,
            ports,
            affinity,
        })
    }

    /// The names the Service has in a pod's /etc/hosts (in its own namespace).
    pub fn host_names(&self) -> [String; 4] {
        let (name, ns) = (&self.name, &self.namespace);
        [
            name.clone(),
            format!("{name}.{ns}"),
            format!("{name}.{ns}.svc"),
            format!("{name}.{ns}.svc.cluster.local"),
        ]
    }
}

/// A ready endpoint: a pod address and port, and the node the pod runs on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// The pod's address.
    pub ip: Ipv4Addr,
    /// The port the pod serves the Service port on.
    pub port: u16,
    /// The pod's node, when the Endpoints object says.
    pub node: Option<String>,
}

/// How a connection names the Service port it wants.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PortRef {
    /// By the Service port's number.
    Number(u16),
    /// By the Service port's name.
    Name(String),
}

/// Why no endpoint could be picked.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PickError {
    /// No such Service (in that namespace).
    #[error("service {0} not found")]
    UnknownService(String),
    /// The Service has no such port.
    #[error("service {0} has no port {1}")]
    UnknownPort(String, String),
    /// The Service has no ready endpoint for the port.
    #[error("service {0} has no ready endpoint")]
    NoReadyEndpoint(String),
}

#[derive(Clone, Debug, Default)]
struct Subset {
    ports: Vec<(String, u16)>,
    ready: Vec<(Ipv4Addr, Option<String>)>,
}

type Key = (String, String);

/// Services and endpoints, with the round-robin and affinity state of picking.
#[derive(Debug, Default)]
pub struct Table {
    services: BTreeMap<Key, ServiceInfo>,
    endpoints: BTreeMap<Key, Vec<Subset>>,
    turns: HashMap<(Key, String), usize>,
    affinity: HashMap<(Key, String, IpAddr), (Endpoint, Instant)>,
}

impl Table {
    /// Adds or replaces a Service.
    pub fn set_service(&mut self, service: &Service) {
        if let Some(info) = ServiceInfo::from_service(service) {
            self.services
                .insert((info.namespace.clone(), info.name.clone()), info);
        }
    }

    /// Forgets a Service.
    pub fn remove_service(&mut self, namespace: &str, name: &str) {
        let key = (namespace.to_owned(), name.to_owned());
        self.services.remove(&key);
        self.affinity.retain(|(k, _, _), _| *k != key);
        self.turns.retain(|(k, _), _| *k != key);
    }

    /// Adds or replaces a Service's endpoints; only ready addresses are kept.
    pub fn set_endpoints(&mut self, endpoints: &Endpoints) {
        let (Some(namespace), Some(name)) = (
            endpoints.metadata.namespace.clone(),
            endpoints.metadata.name.clone(),
        ) else {
            return;
        };
        let subsets = endpoints
            .subsets
            .iter()
            .flatten()
            .map(|s| Subset {
                ports: s
                    .ports
                    .iter()
                    .flatten()
                    .filter(|p| p.protocol.as_deref().unwrap_or("TCP") == "TCP")
                    .filter_map(|p| {
                        Some((
                            p.name.clone().unwrap_or_default(),
                            u16::try_from(p.port).ok()?,
                        ))
                    })
                    .collect(),
                ready: s
                    .addresses
                    .iter()
                    .flatten()
                    .filter_map(|a| Some((a.ip.parse().ok()?, a.node_name.clone())))
                    .collect(),
            })
            .collect();
        self.endpoints.insert((namespace, name), subsets);
    }

    /// Forgets a Service's endpoints.
    pub fn remove_endpoints(&mut self, namespace: &str, name: &str) {
        self.endpoints
            .remove(&(namespace.to_owned(), name.to_owned()));
    }

    /// The Services of a namespace, by name.
    pub fn services_in<'a>(&'a self, namespace: &'a str) -> impl Iterator<Item = &'a ServiceInfo> {
        self.services
            .range((namespace.to_owned(), String::new())..)
            .take_while(move |((ns, _), _)| ns == namespace)
            .map(|(_, info)| info)
    }

    /// The Service of `namespace` at `ip` and the name of its port `port`, if there is one.
    pub fn at(&self, namespace: &str, ip: Ipv4Addr, port: u16) -> Option<(String, String)> {
        self.services_in(namespace)
            .filter(|s| s.cluster_ip == Some(ip))
            .find_map(|s| {
                let found = s.ports.iter().find(|p| p.port == port)?;
                Some((s.name.clone(), found.name.clone()))
            })
    }

    /// Every Service.
    pub fn services(&self) -> impl Iterator<Item = &ServiceInfo> {
        self.services.values()
    }

    /// The ready endpoints of a Service port, in a stable order.
    ///
    /// # Errors
    ///
    /// When the Service or port does not exist or nothing is ready.
    pub fn candidates(
        &self,
        namespace: &str,
        name: &str,
        port: &PortRef,
    ) -> Result<(String, Vec<Endpoint>), PickError> {
        let key = (namespace.to_owned(), name.to_owned());
        let shown = format!("{namespace}/{name}");
        let service = self
            .services
            .get(&key)
            .ok_or_else(|| PickError::UnknownService(shown.clone()))?;
        let wanted = service
            .ports
            .iter()
            .find(|p| match port {
                PortRef::Number(n) => p.port == *n,
                PortRef::Name(name) => p.name == *name,
            })
            .ok_or_else(|| {
                let asked = match port {
                    PortRef::Number(n) => n.to_string(),
                    PortRef::Name(name) => name.clone(),
                };
                PickError::UnknownPort(shown.clone(), asked)
            })?;
        let mut found = Vec::new();
        for subset in self.endpoints.get(&key).into_iter().flatten() {
            let Some(target) = subset
                .ports
                .iter()
                .find(|(n, _)| *n == wanted.name)
                .or_else(|| {
                    (subset.ports.len() == 1 && service.ports.len() == 1).then(|| &subset.ports[0])
                })
                .map(|(_, p)| *p)
            else {
                continue;
            };
            found.extend(subset.ready.iter().map(|(ip, node)| Endpoint {
                ip: *ip,
                port: target,
                node: node.clone(),
            }));
        }
        if found.is_empty() {
            return Err(PickError::NoReadyEndpoint(shown));
        }
        found.sort_by_key(|e| (e.ip, e.port));
        Ok((wanted.name.clone(), found))
    }

    /// Picks the endpoint a new connection from `client` goes to, skipping `failed` ones
    /// (which refused this very connection a moment ago) while others remain.
    ///
    /// # Errors
    ///
    /// When the Service or port does not exist or nothing is ready.
    pub fn pick(
        &mut self,
        namespace: &str,
        name: &str,
        port: &PortRef,
        client: IpAddr,
        failed: &[Endpoint],
        now: Instant,
    ) -> Result<Endpoint, PickError> {
        let (port_name, mut candidates) = self.candidates(namespace, name, port)?;
        if candidates.iter().any(|c| !failed.contains(c)) {
            candidates.retain(|c| !failed.contains(c));
        }
        let key = (namespace.to_owned(), name.to_owned());
        let affinity = self.services.get(&key).and_then(|s| s.affinity);
        let sticky = (key.clone(), port_name.clone(), client);
        if let Some(timeout) = affinity
            && let Some((endpoint, last)) = self.affinity.get(&sticky)
            && now.saturating_duration_since(*last) < timeout
            && candidates.contains(endpoint)
        {
            let endpoint = endpoint.clone();
            self.affinity.insert(sticky, (endpoint.clone(), now));
            return Ok(endpoint);
        }
        let turn = self.turns.entry((key, port_name)).or_default();
        let endpoint = candidates[*turn % candidates.len()].clone();
        *turn = turn.wrapping_add(1);
        if affinity.is_some() {
            self.affinity.insert(sticky, (endpoint.clone(), now));
        }
        Ok(endpoint)
    }
}

/// The `<SVC>_SERVICE_HOST` / `_PORT` and Docker-link variables a container gets for the
/// Services of its namespace that exist when it starts, as the kubelet sets them.
pub fn service_env<'a>(
    services: impl IntoIterator<Item = &'a ServiceInfo>,
) -> Vec<(String, String)> {
    let mut env = Vec::new();
    for service in services {
        let (Some(ip), Some(first)) = (service.cluster_ip, service.ports.first()) else {
            continue;
        };
        let prefix = service.name.to_uppercase().replace('-', "_");
        env.push((format!("{prefix}_SERVICE_HOST"), ip.to_string()));
        env.push((format!("{prefix}_SERVICE_PORT"), first.port.to_string()));
        for port in service.ports.iter().filter(|p| !p.name.is_empty()) {
            let name = port.name.to_uppercase().replace('-', "_");
            env.push((
                format!("{prefix}_SERVICE_PORT_{name}"),
                port.port.to_string(),
            ));
        }
        env.push((
            format!("{prefix}_PORT"),
            format!("tcp://{ip}:{}", first.port),
        ));
        for port in &service.ports {
            let link = format!("{prefix}_PORT_{}_TCP", port.port);
            env.push((link.clone(), format!("tcp://{ip}:{}", port.port)));
            env.push((format!("{link}_PROTO"), "tcp".into()));
            env.push((format!("{link}_PORT"), port.port.to_string()));
            env.push((format!("{link}_ADDR"), ip.to_string()));
        }
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(json: serde_json::Value) -> Service {
        serde_json::from_value(json).unwrap()
    }

    fn table() -> Table {
        let mut table = Table::default();
        table.set_service(&service(serde_json::json!({
            "metadata": {"name": "api", "namespace": "shop"},
            "spec": {"clusterIP": "127.100.0.7", "ports": [
                {"name": "http", "port": 80, "targetPort": "web"},
                {"name": "admin", "port": 9000, "targetPort": 9001}
            ]}
        })));
        let endpoints: Endpoints = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "api", "namespace": "shop"},
            "subsets": [{
                "addresses": [{"ip": "127.64.0.3", "nodeName": "b"}, {"ip": "127.64.0.2", "nodeName": "a"}],
                "notReadyAddresses": [{"ip": "127.64.0.9", "nodeName": "a"}],
                "ports": [{"name": "http", "port": 8080}, {"name": "admin", "port": 9001}]
            }]
        }))
        .unwrap();
        table.set_endpoints(&endpoints);
        table
    }

    fn client(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(127, 64, 1, last))
    }

    #[test]
    fn round_robin_over_ready_addresses_with_the_named_target_port() {
        let mut table = table();
        let now = Instant::now();
        let picked: Vec<Endpoint> = (0..4)
            .map(|_| {
                table
                    .pick("shop", "api", &PortRef::Number(80), client(1), &[], now)
                    .unwrap()
            })
            .collect();
        let ips: Vec<String> = picked.iter().map(|e| e.ip.to_string()).collect();
        assert_eq!(
            ips,
            ["127.64.0.2", "127.64.0.3", "127.64.0.2", "127.64.0.3"]
        );
        assert!(picked.iter().all(|e| e.port == 8080));
        assert_eq!(picked[0].node.as_deref(), Some("a"));
        let admin = table
            .pick(
                "shop",
                "api",
                &PortRef::Name("admin".into()),
                client(1),
                &[],
                now,
            )
            .unwrap();
        assert_eq!(admin.port, 9001);
    }

    #[test]
    fn a_failed_endpoint_is_skipped_while_another_is_ready() {
        let mut table = table();
        let now = Instant::now();
        let failed = table
            .pick("shop", "api", &PortRef::Number(80), client(1), &[], now)
            .unwrap();
        for _ in 0..3 {
            let next = table
                .pick(
                    "shop",
                    "api",
                    &PortRef::Number(80),
                    client(1),
                    std::slice::from_ref(&failed),
                    now,
                )
                .unwrap();
            assert_ne!(next, failed);
        }
    }

    #[test]
    fn client_ip_affinity_keeps_a_client_on_its_endpoint_until_the_timeout() {
        let mut table = table();
        table.set_service(&service(serde_json::json!({
            "metadata": {"name": "api", "namespace": "shop"},
            "spec": {"clusterIP": "127.100.0.7", "sessionAffinity": "ClientIP",
                "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}},
                "ports": [{"name": "http", "port": 80}]}
        })));
        let now = Instant::now();
        let first = table
            .pick("shop", "api", &PortRef::Number(80), client(1), &[], now)
            .unwrap();
        for step in 1..5 {
            let again = table
                .pick(
                    "shop",
                    "api",
                    &PortRef::Number(80),
                    client(1),
                    &[],
                    now + Duration::from_secs(step * 30),
                )
                .unwrap();
            assert_eq!(again, first, "use refreshes the affinity");
        }
        let other = table
            .pick("shop", "api", &PortRef::Number(80), client(2), &[], now)
            .unwrap();
        assert_ne!(other, first, "another client takes the next turn");
        let later = now + Duration::from_secs(120 + 61);
        let expired = table
            .pick("shop", "api", &PortRef::Number(80), client(1), &[], later)
            .unwrap();
        assert_eq!(
            expired, first,
            "round robin's turn has come back to the first endpoint"
        );
        for other in [3, 4] {
            table
                .pick(
                    "shop",
                    "api",
                    &PortRef::Number(80),
                    client(other),
                    &[],
                    later,
                )
                .unwrap();
        }
        let much_later = later + Duration::from_secs(61);
        let moved = table
            .pick(
                "shop",
                "api",
                &PortRef::Number(80),
                client(1),
                &[],
                much_later,
            )
            .unwrap();
        assert_ne!(moved, first, "an expired affinity takes round robin's turn");
    }

    #[test]
    fn errors_name_what_is_missing() {
        let mut table = table();
        let now = Instant::now();
        assert_eq!(
            table.pick("other", "api", &PortRef::Number(80), client(1), &[], now),
            Err(PickError::UnknownService("other/api".into()))
        );
        assert_eq!(
            table.pick("shop", "api", &PortRef::Number(81), client(1), &[], now),
            Err(PickError::UnknownPort("shop/api".into(), "81".into()))
        );
        table.remove_endpoints("shop", "api");
        assert_eq!(
            table.pick("shop", "api", &PortRef::Number(80), client(1), &[], now),
            Err(PickError::NoReadyEndpoint("shop/api".into()))
        );
    }

    #[test]
    fn services_of_a_namespace_and_their_variables() {
        let mut table = table();
        table.set_service(&service(serde_json::json!({
            "metadata": {"name": "web-front", "namespace": "shop"},
            "spec": {"clusterIP": "127.100.0.8", "type": "NodePort",
                "ports": [{"port": 80, "nodePort": 30080}]}
        })));
        table.set_service(&service(serde_json::json!({
            "metadata": {"name": "db", "namespace": "shopping"},
            "spec": {"clusterIP": "127.100.0.9", "ports": [{"port": 5432}]}
        })));
        let names: Vec<&str> = table.services_in("shop").map(|s| s.name.as_str()).collect();
        let ip = Ipv4Addr::new(127, 100, 0, 7);
        assert_eq!(
            table.at("shop", ip, 9000),
            Some(("api".into(), "admin".into()))
        );
        assert_eq!(table.at("shop", ip, 9001), None);
        assert_eq!(table.at("shopping", ip, 9000), None);
        assert_eq!(names, ["api", "web-front"]);
        let env = service_env(table.services_in("shop"));
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("API_SERVICE_HOST"), Some("127.100.0.7"));
        assert_eq!(get("API_SERVICE_PORT"), Some("80"));
        assert_eq!(get("API_SERVICE_PORT_ADMIN"), Some("9000"));
        assert_eq!(get("API_PORT"), Some("tcp://127.100.0.7:80"));
        assert_eq!(get("API_PORT_9000_TCP_ADDR"), Some("127.100.0.7"));
        assert_eq!(get("WEB_FRONT_SERVICE_HOST"), Some("127.100.0.8"));
        assert_eq!(get("DB_SERVICE_HOST"), None);
        let front = table.services_in("shop").nth(1).unwrap();
        assert_eq!(front.ports[0].node_port, Some(30080));
        assert_eq!(front.host_names()[3], "web-front.shop.svc.cluster.local");
    }
}
