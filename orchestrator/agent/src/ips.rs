//! Pod addresses: each pod gets one address from the node's loopback block (its pod
//! CIDR), on the `lo` of its network namespace. The address names the pod to Services
//! and probes; it never leaves the machine (D5).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// A block of IPv4 addresses, `a.b.c.d/len`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    base: u32,
    len: u8,
}

impl Cidr {
    /// Whether `ip` is inside the block.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = if self.len == 0 {
            0
        } else {
            u32::MAX << (32 - self.len)
        };
        u32::from(ip) & mask == self.base
    }

    fn size(&self) -> u32 {
        1u32.checked_shl(u32::from(32 - self.len))
            .unwrap_or(u32::MAX)
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (ip, len) = text
            .split_once('/')
            .ok_or_else(|| format!("{text:?} is not a CIDR block such as 127.64.0.0/16"))?;
        let ip: Ipv4Addr = ip.parse().map_err(|e| format!("{text:?}: {e}"))?;
        let len: u8 = len.parse().map_err(|e| format!("{text:?}: {e}"))?;
        if !(8..=30).contains(&len) {
            return Err(format!(
                "{text:?}: the prefix length must be between 8 and 30"
            ));
        }
        if !ip.is_loopback() {
            return Err(format!(
                "{text:?}: pod addresses must be loopback addresses (127.0.0.0/8)"
            ));
        }
        let mask = u32::MAX << (32 - len);
        Ok(Cidr {
            base: u32::from(ip) & mask,
            len,
        })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.base), self.len)
    }
}

/// The pod CIDR for node `name` among `nodes`: the one it was registered with, else the
/// first `127.N.0.0/16` (N from 64) no other Node holds. 127.100.0.0/16 is skipped: it is
/// the ClusterIP range.
pub(crate) fn choose(name: &str, nodes: &[k8s_openapi::api::core::v1::Node]) -> Option<Cidr> {
    let cidr_of = |node: &k8s_openapi::api::core::v1::Node| -> Option<Cidr> {
        node.spec.as_ref()?.pod_cidr.as_ref()?.parse().ok()
    };
    if let Some(own) = nodes
        .iter()
        .find(|n| n.metadata.name.as_deref() == Some(name))
        .and_then(cidr_of)
    {
        return Some(own);
    }
    let taken: Vec<Cidr> = nodes.iter().filter_map(cidr_of).collect();
    (64u8..=127)
        .filter(|second| *second != 100)
        .map(|second| Cidr {
            base: u32::from(Ipv4Addr::new(127, second, 0, 0)),
            len: 16,
        })
        .find(|candidate| !taken.contains(candidate))
}

/// Which pod holds which address.
#[derive(Debug)]
pub(crate) struct Ips {
    cidr: Cidr,
    held: BTreeMap<String, Ipv4Addr>,
}

impl Ips {
    pub(crate) fn new(cidr: Cidr) -> Self {
        Ips {
            cidr,
            held: BTreeMap::new(),
        }
    }

    /// The pod's address: the one it has, else `wanted` if free and in the block (a pod
    /// keeps its address across agent restarts), else the lowest free one.
    pub(crate) fn claim(&mut self, uid: &str, wanted: Option<Ipv4Addr>) -> Option<Ipv4Addr> {
        if let Some(ip) = self.held.get(uid) {
            return Some(*ip);
        }
        let taken =
            |ip: &Ipv4Addr, held: &BTreeMap<String, Ipv4Addr>| held.values().any(|h| h == ip);
        let ip = match wanted {
            Some(ip) if self.cidr.contains(ip) && !taken(&ip, &self.held) => ip,
            _ => (2..self.cidr.size().saturating_sub(1))
                .map(|offset| Ipv4Addr::from(self.cidr.base + offset))
                .find(|ip| !taken(ip, &self.held))?,
        };
        self.held.insert(uid.to_owned(), ip);
        Some(ip)
    }

    pub(crate) fn release(&mut self, uid: &str) {
        self.held.remove(uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_node_gets_a_block_of_its_own_and_keeps_it() {
        let node = |name: &str, cidr: Option<&str>| -> k8s_openapi::api::core::v1::Node {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name}, "spec": {"podCIDR": cidr}}))
            .expect("a node")
        };
        assert_eq!(
            choose("a", &[]).map(|c| c.to_string()),
            Some("127.64.0.0/16".into())
        );
        let nodes = [
            node("a", Some("127.64.0.0/16")),
            node("b", Some("127.65.0.0/16")),
        ];
        assert_eq!(
            choose("a", &nodes).map(|c| c.to_string()),
            Some("127.64.0.0/16".into())
        );
        assert_eq!(
            choose("c", &nodes).map(|c| c.to_string()),
            Some("127.66.0.0/16".into())
        );
        let crowded: Vec<_> = (64..100)
            .map(|n| node(&format!("n{n}"), Some(&format!("127.{n}.0.0/16"))))
            .collect();
        assert_eq!(
            choose("new", &crowded).map(|c| c.to_string()),
            Some("127.101.0.0/16".into()),
            "the ClusterIP range is skipped"
        );
    }

    #[test]
    fn addresses_are_kept_reused_and_bounded() {
        let cidr: Cidr = "127.64.0.0/30".parse().expect("cidr");
        let mut ips = Ips::new(cidr);
        assert_eq!(ips.claim("a", None), Some(Ipv4Addr::new(127, 64, 0, 2)));
        assert_eq!(ips.claim("a", None), Some(Ipv4Addr::new(127, 64, 0, 2)));
        assert_eq!(ips.claim("b", None), None, "a /30 holds one pod address");
        ips.release("a");
        assert_eq!(
            ips.claim("b", Some(Ipv4Addr::new(127, 64, 0, 2))),
            Some(Ipv4Addr::new(127, 64, 0, 2))
        );
        assert!("10.0.0.0/16".parse::<Cidr>().is_err());
        assert!("127.0.0.0/4".parse::<Cidr>().is_err());
        assert_eq!(
            "127.64.9.9/16".parse::<Cidr>().map(|c| c.to_string()),
            Ok("127.64.0.0/16".into())
        );
    }
}
