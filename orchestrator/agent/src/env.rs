//! A container's environment as the kubelet makes it: `envFrom` sources, then `env`
//! entries with `$(VAR)` expansion, values from ConfigMaps, Secrets, the pod's own fields
//! and its containers' resources. Also the downward API's field and resource values, which
//! volumes share. No IO: the caller fetches the ConfigMaps and Secrets first.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod, ResourceRequirements};
use slipway_model::quantity::ParsedQuantity;

/// Why a container's configuration could not be made; shown as the waiting reason
/// `CreateContainerConfigError` with this message, as the kubelet does.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// The ConfigMaps and Secrets of the pod's namespace that its containers refer to, and
/// what the node offers (the default of an unset limit).
#[derive(Clone, Debug, Default)]
pub struct Sources {
    /// ConfigMap name → data (binaryData is not offered as environment).
    pub config_maps: BTreeMap<String, BTreeMap<String, String>>,
    /// Secret name → decoded data.
    pub secrets: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    /// The variables of the namespace's Services (`<SVC>_SERVICE_HOST` and the like),
    /// which the container's own variables may use and override.
    pub services: Vec<(String, String)>,
    /// The node's allocatable cpu in millicores.
    pub node_cpu_milli: i64,
    /// The node's allocatable memory in bytes.
    pub node_memory: i64,
}

/// The names of the ConfigMaps and Secrets a pod's containers and volumes refer to.
pub fn references(pod: &Pod) -> (Vec<String>, Vec<String>) {
    let mut config_maps = Vec::new();
    let mut secrets = Vec::new();
    let Some(spec) = &pod.spec else {
        return (config_maps, secrets);
    };
    let containers = spec
        .init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter());
    for container in containers {
        for from in container.env_from.iter().flatten() {
            if let Some(r) = &from.config_map_ref {
                config_maps.push(r.name.clone());
            }
            if let Some(r) = &from.secret_ref {
                secrets.push(r.name.clone());
            }
        }
        for var in container.env.iter().flatten() {
            if let Some(from) = &var.value_from {
                if let Some(r) = &from.config_map_key_ref {
                    config_maps.push(r.name.clone());
                }
                if let Some(r) = &from.secret_key_ref {
                    secrets.push(r.name.clone());
                }
            }
        }
    }
    for secret in spec.image_pull_secrets.iter().flatten() {
        secrets.push(secret.name.clone());
    }
    for volume in spec.volumes.iter().flatten() {
        if let Some(c) = &volume.config_map {
            config_maps.push(c.name.clone());
        }
        if let Some(s) = volume.secret.as_ref().and_then(|s| s.secret_name.clone()) {
            secrets.push(s);
        }
        for source in volume
            .projected
            .iter()
            .flat_map(|p| p.sources.iter().flatten())
        {
            if let Some(c) = &source.config_map {
                config_maps.push(c.name.clone());
            }
            if let Some(s) = &source.secret {
                secrets.push(s.name.clone());
            }
        }
    }
    config_maps.sort();
    config_maps.dedup();
    secrets.sort();
    secrets.dedup();
    (config_maps, secrets)
}

/// Expands `$(NAME)` from `vars` as Kubernetes does: unknown names stay as written, `$$`
/// is a literal `$`.
pub fn expand(input: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(') {
            match inner.find(')') {
                Some(end) => {
                    let name = &inner[..end];
                    match vars.get(name) {
                        Some(value) => out.push_str(value),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &inner[end + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = inner;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The container's environment, in order, each name once (a later definition replaces
/// an earlier one in place, as a map would).
///
/// # Errors
///
/// A missing ConfigMap, Secret or key that is not optional, or a field path or resource
/// the downward API does not offer.
pub fn resolve(
    pod: &Pod,
    container: &Container,
    sources: &Sources,
) -> Result<Vec<(String, String)>, ConfigError> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut env: Vec<(String, String)> = Vec::new();
    let set = |env: &mut Vec<(String, String)>, name: String, value: String| match env
        .iter_mut()
        .find(|(n, _)| *n == name)
    {
        Some(entry) => entry.1 = value,
        None => env.push((name, value)),
    };
    for (name, value) in &sources.services {
        set(&mut env, name.clone(), value.clone());
    }
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        if let Some(r) = &from.config_map_ref {
            match sources.config_maps.get(&r.name) {
                Some(data) => {
                    for (key, value) in data {
                        set(&mut env, format!("{prefix}{key}"), value.clone());
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(ConfigError(format!("configmap \"{}\" not found", r.name))),
            }
        }
        if let Some(r) = &from.secret_ref {
            match sources.secrets.get(&r.name) {
                Some(data) => {
                    for (key, value) in data {
                        set(
                            &mut env,
                            format!("{prefix}{key}"),
                            String::from_utf8_lossy(value).into_owned(),
                        );
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(ConfigError(format!("secret \"{}\" not found", r.name))),
            }
        }
    }
    for var in container.env.iter().flatten() {
        let value = if let Some(from) = &var.value_from {
            if let Some(r) = &from.config_map_key_ref {
                let found = key_ref(
                    ("configmap", "ConfigMap"),
                    namespace,
                    sources.config_maps.get(&r.name),
                    (&r.name, &r.key),
                    r.optional == Some(true),
                )?;
                match found {
                    Some(value) => value.clone(),
                    None => continue,
                }
            } else if let Some(r) = &from.secret_key_ref {
                let found = key_ref(
                    ("secret", "Secret"),
                    namespace,
                    sources.secrets.get(&r.name),
                    (&r.name, &r.key),
                    r.optional == Some(true),
                )?;
                match found {
                    Some(value) => String::from_utf8_lossy(value).into_owned(),
                    None => continue,
                }
            } else if let Some(r) = &from.field_ref {
                field_value(pod, &r.field_path)?
            } else if let Some(r) = &from.resource_field_ref {
                let target = match r.container_name.as_deref() {
                    None | Some("") => container,
                    Some(name) => find_container(pod, name).ok_or_else(|| {
                        ConfigError(format!("container {name} not found in the pod"))
                    })?,
                };
                resource_value(target, &r.resource, r.divisor.as_ref(), sources)?
            } else {
                String::new()
            }
        } else {
            let known: BTreeMap<String, String> = env.iter().cloned().collect();
            expand(var.value.as_deref().unwrap_or(""), &known)
        };
        set(&mut env, var.name.clone(), value);
    }
    Ok(env)
}

/// The value of `key` in the ConfigMap or Secret `name` (`data`, if it exists); `None` for
/// a missing optional one. `kind` is how the kubelet's messages name the kind.
fn key_ref<'a, V>(
    kind: (&str, &str),
    namespace: &str,
    data: Option<&'a BTreeMap<String, V>>,
    (name, key): (&str, &str),
    optional: bool,
) -> Result<Option<&'a V>, ConfigError> {
    match data.map(|d| d.get(key)) {
        Some(Some(value)) => Ok(Some(value)),
        _ if optional => Ok(None),
        None => Err(ConfigError(format!("{} \"{name}\" not found", kind.0))),
        Some(None) => Err(ConfigError(format!(
            "couldn't find key {key} in {} {namespace}/{name}",
            kind.1
        ))),
    }
}

fn find_container<'a>(pod: &'a Pod, name: &str) -> Option<&'a Container> {
    let spec = pod.spec.as_ref()?;
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| c.name == name)
}

/// A pod field the downward API offers, by its field path.
///
/// # Errors
///
/// A path the downward API does not offer.
pub fn field_value(pod: &Pod, path: &str) -> Result<String, ConfigError> {
    let meta = &pod.metadata;
    let status = pod.status.as_ref();
    let spec = pod.spec.as_ref();
    let quoted_key = |prefix: &str| -> Option<String> {
        path.strip_prefix(prefix)?
            .strip_suffix("']")
            .map(str::to_owned)
    };
    let text = match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "metadata.labels" => format_map(meta.labels.as_ref()),
        "metadata.annotations" => format_map(meta.annotations.as_ref()),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.hostIP" => status.and_then(|s| s.host_ip.clone()).unwrap_or_default(),
        "status.hostIPs" => status
            .map(|s| joined(s.host_ips.iter().flatten().map(|ip| ip.ip.as_str())))
            .unwrap_or_default(),
        "status.podIP" => status.and_then(|s| s.pod_ip.clone()).unwrap_or_default(),
        "status.podIPs" => status
            .map(|s| joined(s.pod_ips.iter().flatten().map(|ip| ip.ip.as_str())))
            .unwrap_or_default(),
        _ => {
            if let Some(key) = quoted_key("metadata.labels['") {
                meta.labels
                    .as_ref()
                    .and_then(|l| l.get(&key).cloned())
                    .unwrap_or_default()
            } else if let Some(key) = quoted_key("metadata.annotations['") {
                meta.annotations
                    .as_ref()
                    .and_then(|a| a.get(&key).cloned())
                    .unwrap_or_default()
            } else {
                return Err(ConfigError(format!(
                    "unsupported fieldRef fieldPath: {path}"
                )));
            }
        }
    };
    Ok(text)
}

fn joined<'a>(ips: impl Iterator<Item = &'a str>) -> String {
    ips.collect::<Vec<_>>().join(",")
}

/// `key="value"` lines, sorted, as the downward API writes label and annotation maps.
fn format_map(map: Option<&BTreeMap<String, String>>) -> String {
    map.into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A container resource the downward API offers (`limits.cpu`, `requests.memory`, ...),
/// divided by `divisor` and rounded up; an unset limit is the node's allocatable.
///
/// # Errors
///
/// An unknown resource or an unparsable quantity.
pub fn resource_value(
    container: &Container,
    resource: &str,
    divisor: Option<&k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    sources: &Sources,
) -> Result<String, ConfigError> {
    let resources = container.resources.clone().unwrap_or_default();
    let (kind, name) = resource
        .split_once('.')
        .ok_or_else(|| ConfigError(format!("unsupported container resource: {resource}")))?;
    let quantity = |r: &ResourceRequirements, limits: bool| {
        let map = if limits { &r.limits } else { &r.requests };
        map.as_ref().and_then(|m| m.get(name)).cloned()
    };
    let set = match kind {
        "limits" => quantity(&resources, true),
        // An unset request is the limit, as defaulting makes it.
        "requests" => quantity(&resources, false).or_else(|| quantity(&resources, true)),
        _ => {
            return Err(ConfigError(format!(
                "unsupported container resource: {resource}"
            )));
        }
    };
    let nanos = match set {
        Some(q) => ParsedQuantity::try_from(&q)
            .map_err(|e| ConfigError(format!("{resource}: {e}")))?
            .as_nanos(),
        None => match (kind, name) {
            ("limits", "cpu") => i128::from(sources.node_cpu_milli) * 1_000_000,
            ("limits", "memory") => i128::from(sources.node_memory) * 1_000_000_000,
            _ => 0,
        },
    };
    let divisor = match divisor {
        Some(d) => ParsedQuantity::try_from(d)
            .map_err(|e| ConfigError(format!("divisor: {e}")))?
            .as_nanos(),
        None => 1_000_000_000,
    };
    if divisor <= 0 {
        return Err(ConfigError(format!("{resource}: divisor must be positive")));
    }
    // Kubernetes rounds up, so a request of 250m with divisor 1 reads as 1.
    let value = (nanos + divisor - 1).div_euclid(divisor);
    Ok(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web-1", "namespace": "shop", "uid": "u-1",
                         "labels": {"app": "web", "tier": "front"}},
            "spec": {"nodeName": "n1", "containers": [{
                "name": "web", "image": "busybox",
                "resources": {"limits": {"memory": "64Mi"}, "requests": {"cpu": "250m"}},
                "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"},
                            {"secretRef": {"name": "absent", "optional": true}}],
                "env": [
                    {"name": "GREETING", "value": "hello"},
                    {"name": "MESSAGE", "value": "$(GREETING) world $(MISSING) $$(GREETING)"},
                    {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}}},
                    {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
                    {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "TIER", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['tier']"}}},
                    {"name": "MEM_MI", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
                    {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu"}}},
                    {"name": "CPU_LIMIT_M", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}}},
                ]}]},
            "status": {"podIP": "127.0.0.1"},
        }))
        .expect("pod")
    }

    fn sources() -> Sources {
        let mut s = Sources {
            node_cpu_milli: 2000,
            node_memory: 1 << 30,
            ..Sources::default()
        };
        s.config_maps.insert(
            "cfg".into(),
            [("mode".into(), "fast".into()), ("level".into(), "3".into())].into(),
        );
        s.secrets.insert(
            "db".into(),
            [("password".into(), b"s3cret".to_vec())].into(),
        );
        s
    }

    #[test]
    fn expansion_follows_kubernetes() {
        let vars: BTreeMap<String, String> = [("A".to_owned(), "1".to_owned())].into();
        assert_eq!(expand("$(A)-$(B)-$$(A)-$$-$(", &vars), "1-$(B)-$(A)-$-$(");
        assert_eq!(expand("plain $ text", &vars), "plain $ text");
    }

    #[test]
    fn environment_is_resolved_in_order() {
        let pod = pod();
        let container = &pod.spec.as_ref().expect("spec").containers[0];
        let env: BTreeMap<_, _> = resolve(&pod, container, &sources())
            .expect("resolved")
            .into_iter()
            .collect();
        assert_eq!(env["CFG_mode"], "fast");
        assert_eq!(env["CFG_level"], "3");
        assert_eq!(env["MESSAGE"], "hello world $(MISSING) $(GREETING)");
        assert_eq!(env["MODE"], "fast");
        assert_eq!(env["PASSWORD"], "s3cret");
        assert_eq!(env["POD"], "web-1");
        assert_eq!(env["TIER"], "front");
        assert_eq!(env["MEM_MI"], "64");
        assert_eq!(env["CPU"], "1");
        assert_eq!(env["CPU_LIMIT_M"], "2000");
    }

    #[test]
    fn missing_sources_are_errors_with_kubelet_messages() {
        let pod = pod();
        let container = &pod.spec.as_ref().expect("spec").containers[0];
        let mut s = sources();
        s.secrets.clear();
        assert_eq!(
            resolve(&pod, container, &s),
            Err(ConfigError("secret \"db\" not found".into()))
        );
        let mut s = sources();
        s.config_maps.get_mut("cfg").map(|d| d.remove("mode"));
        assert_eq!(
            resolve(&pod, container, &s),
            Err(ConfigError(
                "couldn't find key mode in ConfigMap shop/cfg".into()
            ))
        );
    }

    #[test]
    fn references_cover_env_and_volumes() {
        let mut pod = pod();
        if let Some(spec) = pod.spec.as_mut() {
            spec.volumes = Some(
                serde_json::from_value(json!([
                    {"name": "c", "configMap": {"name": "files"}},
                    {"name": "s", "secret": {"secretName": "tls"}},
                ]))
                .expect("volumes"),
            );
        }
        let (config_maps, secrets) = references(&pod);
        assert_eq!(config_maps, ["cfg", "files"]);
        assert_eq!(secrets, ["absent", "db", "tls"]);
    }

    #[test]
    fn unsupported_field_paths_are_refused() {
        assert!(field_value(&pod(), "spec.nope").is_err());
        assert_eq!(
            field_value(&pod(), "status.podIP").as_deref(),
            Ok("127.0.0.1")
        );
        assert_eq!(
            field_value(&pod(), "metadata.labels").as_deref(),
            Ok("app=\"web\"\ntier=\"front\"")
        );
    }
}
