//! What an object counts against a ResourceQuota, as Kubernetes' quota evaluators count it:
//! one of its kind (`count/<plural>.<group>`, and the short names of the core kinds), a
//! Service's node ports, and a running pod's compute requests and limits. Shared by quota
//! admission in the API server and the quota controller, so both count the same way.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::quantity::{Format, ParsedQuantity};

/// Amounts by quota resource name (`pods`, `requests.cpu`, `count/deployments.apps`, ...).
pub type Usage = BTreeMap<String, ParsedQuantity>;

/// Compute resources a quota can limit, as the quota name and the pod field read.
const COMPUTE: &[(&str, &str, &str)] = &[
    ("requests.cpu", "requests", "cpu"),
    ("requests.memory", "requests", "memory"),
    ("limits.cpu", "limits", "cpu"),
    ("limits.memory", "limits", "memory"),
    ("cpu", "requests", "cpu"),
    ("memory", "requests", "memory"),
];

/// Core kinds a quota also counts under their plural alone.
const SHORT_COUNTS: &[&str] = &[
    "pods",
    "services",
    "configmaps",
    "secrets",
    "resourcequotas",
    "persistentvolumeclaims",
];

/// What an object counts.
#[derive(Debug, Default, PartialEq)]
pub struct Counted {
    /// Its usage.
    pub usage: Usage,
    /// For pods: the containers lacking a request or limit a quota on that compute
    /// resource needs, by quota resource name.
    pub missing: BTreeMap<String, Vec<String>>,
}

/// The quota resource name that counts objects of `plural` in `group`.
pub fn count_name(group: &str, plural: &str) -> String {
    if group.is_empty() {
        format!("count/{plural}")
    } else {
        format!("count/{plural}.{group}")
    }
}

/// The kind (group, plural) whose objects a quota resource name counts, if any.
pub fn counted_kind(resource_name: &str) -> Option<(String, String)> {
    if let Some(counted) = resource_name.strip_prefix("count/") {
        return Some(match counted.split_once('.') {
            Some((plural, group)) => (group.to_owned(), plural.to_owned()),
            None => (String::new(), counted.to_owned()),
        });
    }
    let plural = match resource_name {
        "services.nodeports" | "services.loadbalancers" => "services",
        name if SHORT_COUNTS.contains(&name) => name,
        name if COMPUTE.iter().any(|(q, _, _)| *q == name) => "pods",
        _ => return None,
    };
    Some((String::new(), plural.to_owned()))
}

fn one() -> ParsedQuantity {
    ParsedQuantity::from_value(1, Format::DecimalSI)
}

/// What `object`, of `plural` in `group`, counts against a quota. A pod that has finished
/// (Succeeded or Failed) counts only as an object, not as a pod or its compute.
pub fn usage(group: &str, plural: &str, object: &Value) -> Counted {
    let mut counted = Counted::default();
    counted.usage.insert(count_name(group, plural), one());
    let pod = group.is_empty() && plural == "pods";
    if pod
        && matches!(
            object["status"]["phase"].as_str(),
            Some("Succeeded" | "Failed")
        )
    {
        return counted;
    }
    if group.is_empty() && SHORT_COUNTS.contains(&plural) {
        counted.usage.insert(plural.to_owned(), one());
    }
    if group.is_empty()
        && plural == "services"
        && matches!(
            object["spec"]["type"].as_str(),
            Some("NodePort" | "LoadBalancer")
        )
    {
        let ports = object["spec"]["ports"].as_array().map_or(0, Vec::len) as i64;
        counted.usage.insert(
            "services.nodeports".to_owned(),
            ParsedQuantity::from_value(ports, Format::DecimalSI),
        );
    }
    if pod {
        for container in object["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let name = container["name"].as_str().unwrap_or_default().to_owned();
            for (quota_name, kind, field) in COMPUTE {
                match container["resources"][*kind][*field]
                    .as_str()
                    .and_then(|text| ParsedQuantity::parse(text).ok())
                {
                    Some(q) => {
                        let total = counted
                            .usage
                            .entry((*quota_name).to_owned())
                            .or_insert_with(|| ParsedQuantity::from_value(0, Format::DecimalSI));
                        if let Ok(sum) = total.checked_add(&q) {
                            *total = sum;
                        }
                    }
                    None => counted
                        .missing
                        .entry((*quota_name).to_owned())
                        .or_default()
                        .push(name.clone()),
                }
            }
        }
    }
    counted
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn shown(usage: &Usage) -> Vec<String> {
        usage
            .iter()
            .map(|(k, v)| format!("{k}={}", v.canonical()))
            .collect()
    }

    #[test]
    fn pods_count_their_compute_until_they_finish() {
        let pod = json!({"spec": {"containers": [
            {"name": "a", "resources": {"requests": {"cpu": "250m"}, "limits": {"cpu": "1"}}},
            {"name": "b", "resources": {"requests": {"cpu": "250m", "memory": "1Gi"}}}
        ]}});
        let counted = usage("", "pods", &pod);
        assert_eq!(
            shown(&counted.usage),
            [
                "count/pods=1",
                "cpu=500m",
                "limits.cpu=1",
                "memory=1Gi",
                "pods=1",
                "requests.cpu=500m",
                "requests.memory=1Gi"
            ]
        );
        assert_eq!(counted.missing["limits.cpu"], ["b"]);
        let mut done = pod.clone();
        done["status"]["phase"] = json!("Succeeded");
        assert_eq!(shown(&usage("", "pods", &done).usage), ["count/pods=1"]);
    }

    #[test]
    fn names_map_to_the_kinds_they_count() {
        assert_eq!(usage("apps", "deployments", &json!({})).usage.len(), 1);
        assert_eq!(count_name("apps", "deployments"), "count/deployments.apps");
        assert_eq!(
            counted_kind("count/deployments.apps"),
            Some(("apps".into(), "deployments".into()))
        );
        assert_eq!(
            counted_kind("count/secrets"),
            Some((String::new(), "secrets".into()))
        );
        assert_eq!(
            counted_kind("requests.memory"),
            Some((String::new(), "pods".into()))
        );
        assert_eq!(
            counted_kind("services.nodeports"),
            Some((String::new(), "services".into()))
        );
        assert_eq!(counted_kind("requests.storage"), None);
        let service = json!({"spec": {"type": "NodePort", "ports": [{"port": 80}, {"port": 443}]}});
        assert_eq!(
            shown(&usage("", "services", &service).usage),
            ["count/services=1", "services=1", "services.nodeports=2"]
        );
    }
}
