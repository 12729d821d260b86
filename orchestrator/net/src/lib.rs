//! Pod networking on loopback (D5): sockets made inside pod network namespaces
//! ([`netns`]), the Service proxy that takes every pod's connections to ClusterIPs
//! ([`redirect`]) and NodePorts ([`proxy`]), the Service and endpoint table it picks from ([`table`]), and
//! the authenticated node-to-node tunnel for endpoints on other nodes ([`tunnel`]), and
//! the gateway's way to Services through the proxy ([`upstream`]).

pub mod netns;
pub mod proxy;
pub mod redirect;
pub mod table;
pub mod tunnel;
pub mod upstream;

pub use netns::Netns;
pub use proxy::{ConnectError, HostsFile, LocalPod, Proxy, ProxyConfig};
pub use table::{Endpoint, PickError, PortRef, ServiceInfo};
pub use tunnel::TunnelKey;
pub use upstream::ProxyUpstream;
