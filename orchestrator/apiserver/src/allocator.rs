//! ClusterIP and NodePort allocation for Services. Each allocated IP or port is a key in
//! the Store, reserved by create-if-absent, so two Services can never get the same one,
//! even from two API servers sharing one etcd; deleting the Service releases it.
//!
//! Service IPs come from a loopback range (DESIGN D5: pods reach Services on loopback
//! addresses inside their own network namespace).

use std::net::Ipv4Addr;

use bytes::Bytes;
use serde_json::{Value, json};
use slipway_model::validation::FieldError;
use slipway_store::{Error as StoreError, Store};

use crate::resources::ResourceType;
use crate::status::{ApiError, ApiResult, from_store};

/// The Service IP range, 127.100.0.0/16.
pub const SERVICE_NETWORK: Ipv4Addr = Ipv4Addr::new(127, 100, 0, 0);
/// The prefix length of [`SERVICE_NETWORK`].
pub const SERVICE_PREFIX: u8 = 16;
/// The NodePort range, as Kubernetes' default.
pub const NODE_PORTS: std::ops::RangeInclusive<u16> = 30000..=32767;

const IP_KEYS: &str = "/registry/ranges/serviceips/";
const PORT_KEYS: &str = "/registry/ranges/servicenodeports/";

/// What one Service holds, so a failed create or a delete can give it back.
#[derive(Debug, Default)]
pub struct Reservations {
    keys: Vec<String>,
}

impl Reservations {
    /// Gives everything back; "already gone" is fine.
    pub async fn release(self, store: &dyn Store) {
        for key in self.keys {
            if let Err(e) = store.delete(&key, None).await
                && !matches!(e, StoreError::NotFound { .. })
            {
                tracing::warn!(%key, error = %e, "releasing a service allocation failed");
            }
        }
    }
}

fn range_size() -> u32 {
    1u32 << (32 - SERVICE_PREFIX)
}

fn in_range(ip: Ipv4Addr) -> bool {
    let mask = u32::MAX << (32 - SERVICE_PREFIX);
    u32::from(ip) & mask == u32::from(SERVICE_NETWORK)
}

fn owner(object: &Value) -> Bytes {
    let meta = &object["metadata"];
    Bytes::from(format!(
        "{}/{}",
        meta["namespace"].as_str().unwrap_or_default(),
        meta["name"].as_str().unwrap_or_default()
    ))
}

/// A random starting point, so concurrent allocations rarely collide.
fn random_offset(modulo: u32) -> u32 {
    let mut bytes = [0u8; 4];
    if getrandom::fill(&mut bytes).is_err() {
        return 0;
    }
    u32::from_le_bytes(bytes) % modulo
}

/// Allocates the ClusterIP and NodePorts a new Service needs, writing them into it.
pub async fn allocate(
    store: &dyn Store,
    resource: &ResourceType,
    service: &mut Value,
) -> ApiResult<Reservations> {
    let mut reservations = Reservations::default();
    match allocate_into(store, resource, service, &[], &mut reservations).await {
        Ok(()) => Ok(reservations),
        Err(e) => {
            reservations.release(store).await;
            Err(e)
        }
    }
}

/// Addresses for an updated Service, as Kubernetes' service REST update keeps them: what
/// the old version held stays held, a type that newly needs node ports gets them, and a
/// type that no longer does drops them. Returns what was newly taken (to give back if the
/// update fails) and what the old version held that the new one does not (to give back once
/// it is written).
pub async fn reallocate(
    store: &dyn Store,
    resource: &ResourceType,
    old: &Value,
    service: &mut Value,
) -> ApiResult<(Reservations, Reservations)> {
    let held = held_by(old).keys;
    let mut taken = Reservations::default();
    if let Err(e) = allocate_into(store, resource, service, &held, &mut taken).await {
        taken.release(store).await;
        return Err(e);
    }
    let kept = held_by(service).keys;
    let dropped = Reservations {
        keys: held.into_iter().filter(|k| !kept.contains(k)).collect(),
    };
    Ok((taken, dropped))
}

/// Before an update is validated: a Service that stops being NodePort or LoadBalancer
/// loses the node ports it still carries from before, as Kubernetes' service strategy
/// drops type-dependent fields; node ports the client changed stay, and fail validation.
pub fn drop_type_dependent_fields(old: &Value, service: &mut Value) {
    if service["kind"] != "Service"
        || matches!(
            service["spec"]["type"].as_str(),
            Some("NodePort" | "LoadBalancer")
        )
    {
        return;
    }
    let before: Vec<Value> = old["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| p["nodePort"].clone())
        .collect();
    for (i, port) in service["spec"]["ports"]
        .as_array_mut()
        .into_iter()
        .flatten()
        .enumerate()
    {
        if before.get(i).is_some_and(|b| *b == port["nodePort"])
            && let Some(port) = port.as_object_mut()
        {
            port.remove("nodePort");
        }
    }
}

/// Reserves what `service` needs; keys in `held` are the service's own already.
async fn allocate_into(
    store: &dyn Store,
    resource: &ResourceType,
    service: &mut Value,
    held: &[String],
    reservations: &mut Reservations,
) -> ApiResult<()> {
    let name = service["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let service_type = service["spec"]["type"]
        .as_str()
        .unwrap_or("ClusterIP")
        .to_owned();
    if service_type == "ExternalName" {
        return Ok(());
    }
    let who = owner(service);
    let invalid = |field: &str, value: String, detail: String| {
        ApiError::invalid(
            resource,
            &name,
            &[FieldError::invalid(field, value, detail)],
        )
    };

    match service["spec"]["clusterIP"]
        .as_str()
        .filter(|ip| !ip.is_empty())
    {
        Some("None") => {}
        Some(requested) => {
            let ip: Ipv4Addr = requested.parse().map_err(|_| {
                invalid(
                    "spec.clusterIP",
                    requested.to_owned(),
                    "must be a valid IPv4 address".to_owned(),
                )
            })?;
            if !in_range(ip) {
                return Err(invalid(
                    "spec.clusterIP",
                    requested.to_owned(),
                    format!(
                        "provided IP is not in the valid range. The range of valid IPs is {SERVICE_NETWORK}/{SERVICE_PREFIX}"
                    ),
                ));
            }
            let key = format!("{IP_KEYS}{ip}");
            match store.create(&key, who.clone(), None).await {
                // Its own address from before the update (the create found it taken).
                Err(StoreError::AlreadyExists { .. }) if held.contains(&key) => {}
                Ok(_) => reservations.keys.push(key),
                Err(StoreError::AlreadyExists { .. }) => {
                    return Err(invalid(
                        "spec.clusterIP",
                        requested.to_owned(),
                        "provided IP is already allocated".to_owned(),
                    ));
                }
                Err(e) => return Err(from_store(resource, &name, e)),
            }
            service["spec"]["clusterIPs"] = json!([requested]);
        }
        None => {
            let size = range_size();
            let start = random_offset(size);
            let mut allocated = None;
            // Skip the network and broadcast addresses, as Kubernetes does.
            for step in 0..size {
                let offset = (start + step) % size;
                if offset == 0 || offset == size - 1 {
                    continue;
                }
                let ip = Ipv4Addr::from(u32::from(SERVICE_NETWORK) + offset);
                let key = format!("{IP_KEYS}{ip}");
                match store.create(&key, who.clone(), None).await {
                    Ok(_) => {
                        reservations.keys.push(key);
                        allocated = Some(ip);
                        break;
                    }
                    Err(StoreError::AlreadyExists { .. }) => continue,
                    Err(e) => return Err(from_store(resource, &name, e)),
                }
            }
            let ip = allocated.ok_or_else(|| {
                ApiError::internal(format!(
                    "failed to allocate a serviceIP: range {SERVICE_NETWORK}/{SERVICE_PREFIX} is full"
                ))
            })?;
            service["spec"]["clusterIP"] = json!(ip.to_string());
            service["spec"]["clusterIPs"] = json!([ip.to_string()]);
        }
    }

    if matches!(service_type.as_str(), "NodePort" | "LoadBalancer") {
        let ports = service["spec"]["ports"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut updated = Vec::with_capacity(ports.len());
        for (i, mut port) in ports.into_iter().enumerate() {
            let field = format!("spec.ports[{i}].nodePort");
            match port["nodePort"].as_i64().filter(|p| *p != 0) {
                Some(requested) => {
                    let valid = u16::try_from(requested)
                        .ok()
                        .filter(|p| NODE_PORTS.contains(p));
                    let Some(requested) = valid else {
                        return Err(invalid(
                            &field,
                            requested.to_string(),
                            format!(
                                "provided port is not in the valid range. The range of valid ports is {}-{}",
                                NODE_PORTS.start(),
                                NODE_PORTS.end()
                            ),
                        ));
                    };
                    let key = format!("{PORT_KEYS}{requested}");
                    match store.create(&key, who.clone(), None).await {
                        // Its own port from before the update.
                        Err(StoreError::AlreadyExists { .. }) if held.contains(&key) => {}
                        Ok(_) => reservations.keys.push(key),
                        Err(StoreError::AlreadyExists { .. }) => {
                            return Err(invalid(
                                &field,
                                requested.to_string(),
                                "provided port is already allocated".to_owned(),
                            ));
                        }
                        Err(e) => return Err(from_store(resource, &name, e)),
                    }
                }
                None => {
                    let size = u32::from(NODE_PORTS.end() - NODE_PORTS.start()) + 1;
                    let start = random_offset(size);
                    let mut allocated = None;
                    for step in 0..size {
                        let candidate = NODE_PORTS.start() + ((start + step) % size) as u16;
                        let key = format!("{PORT_KEYS}{candidate}");
                        match store.create(&key, who.clone(), None).await {
                            Ok(_) => {
                                reservations.keys.push(key);
                                allocated = Some(candidate);
                                break;
                            }
                            Err(StoreError::AlreadyExists { .. }) => continue,
                            Err(e) => return Err(from_store(resource, &name, e)),
                        }
                    }
                    let candidate = allocated.ok_or_else(|| {
                        ApiError::internal("failed to allocate a nodePort: the range is full")
                    })?;
                    port["nodePort"] = json!(candidate);
                }
            }
            updated.push(port);
        }
        service["spec"]["ports"] = Value::Array(updated);
    }
    Ok(())
}

/// The reservations a stored Service holds.
pub fn held_by(service: &Value) -> Reservations {
    let mut keys = Vec::new();
    if let Some(ip) = service["spec"]["clusterIP"]
        .as_str()
        .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
        && in_range(ip)
    {
        keys.push(format!("{IP_KEYS}{ip}"));
    }
    for port in service["spec"]["ports"].as_array().into_iter().flatten() {
        if let Some(node_port) = port["nodePort"].as_u64().filter(|p| *p != 0) {
            keys.push(format!("{PORT_KEYS}{node_port}"));
        }
    }
    Reservations { keys }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_membership() {
        assert!(in_range(Ipv4Addr::new(127, 100, 3, 4)));
        assert!(!in_range(Ipv4Addr::new(127, 101, 0, 1)));
        assert!(!in_range(Ipv4Addr::new(10, 100, 0, 1)));
        assert_eq!(range_size(), 65536);
    }

    #[test]
    fn held_reservations_of_a_service() {
        let service = json!({"spec": {"clusterIP": "127.100.0.9", "ports": [{"port": 80, "nodePort": 30080}, {"port": 81}]}});
        assert_eq!(
            held_by(&service).keys,
            [
                "/registry/ranges/serviceips/127.100.0.9",
                "/registry/ranges/servicenodeports/30080"
            ]
        );
        assert!(
            held_by(&json!({"spec": {"clusterIP": "None"}}))
                .keys
                .is_empty()
        );
    }
}
