//! Discovery: `/version`, the legacy documents (`/api`, `/apis`, `/api/v1`, `/apis/{g}/{v}`)
//! and aggregated discovery, answered in exactly the `v2` or `v2beta1` the client asked for.

use serde_json::{Value, json};

use crate::resources::{RESOURCES, ResourceType, Scope, groups};

/// The Kubernetes version reported. kubectl on these machines is a dispatcher that picks
/// its own version from `minor`, so it must stay a version it ships (1.32).
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "32",
        "gitVersion": concat!("v1.32.0+slipway.", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "",
        "compiler": "rustc",
        "platform": "linux/amd64",
    })
}

/// Which discovery document a request's `Accept` header asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `apidiscovery.k8s.io/v2`.
    AggregatedV2,
    /// `apidiscovery.k8s.io/v2beta1`.
    AggregatedV2Beta1,
    /// The legacy `APIVersions` / `APIGroupList`.
    Legacy,
}

impl Format {
    /// The first aggregated version the Accept header names, else legacy.
    pub fn negotiate(accept: &str) -> Format {
        for media in accept.split(',') {
            let params: Vec<&str> = media.split(';').map(str::trim).collect();
            let is_discovery = params.contains(&"g=apidiscovery.k8s.io")
                && params.contains(&"as=APIGroupDiscoveryList");
            if !is_discovery {
                continue;
            }
            if params.contains(&"v=v2") {
                return Format::AggregatedV2;
            }
            if params.contains(&"v=v2beta1") {
                return Format::AggregatedV2Beta1;
            }
        }
        Format::Legacy
    }

    fn api_version(self) -> &'static str {
        match self {
            Format::AggregatedV2Beta1 => "apidiscovery.k8s.io/v2beta1",
            _ => "apidiscovery.k8s.io/v2",
        }
    }

    /// The response's Content-Type.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::AggregatedV2 => {
                "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
            }
            Format::AggregatedV2Beta1 => {
                "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
            }
            Format::Legacy => "application/json",
        }
    }
}

/// `GET /api`.
pub fn core(format: Format) -> Value {
    match format {
        Format::Legacy => json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [],
        }),
        aggregated => aggregated_list(aggregated, &[("", vec!["v1"])]),
    }
}

/// `GET /apis`.
pub fn groups_document(format: Format) -> Value {
    let groups = groups();
    match format {
        Format::Legacy => json!({
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": groups.iter().map(|(name, versions)| group(name, versions)).collect::<Vec<_>>(),
        }),
        aggregated => aggregated_list(aggregated, &groups),
    }
}

/// `GET /apis/{group}`, if the group is served.
pub fn group_document(name: &str) -> Option<Value> {
    groups()
        .into_iter()
        .find(|(g, _)| *g == name)
        .map(|(name, versions)| {
            let mut doc = group(name, &versions);
            doc["kind"] = json!("APIGroup");
            doc["apiVersion"] = json!("v1");
            doc
        })
}

fn group(name: &str, versions: &[&str]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| json!({ "groupVersion": format!("{name}/{v}"), "version": v }))
        .collect();
    json!({ "name": name, "versions": versions, "preferredVersion": versions[0] })
}

/// `GET /api/v1` or `GET /apis/{group}/{version}`, if served.
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    let served: Vec<&ResourceType> = RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .collect();
    if served.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for r in served {
        resources.push(json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced(),
            "kind": r.kind,
            "verbs": r.verbs,
            "shortNames": r.short_names,
            "categories": r.categories,
        }));
        for sub in r.subresources {
            let mut entry = json!({
                "name": format!("{}/{}", r.plural, sub.name),
                "singularName": "",
                "namespaced": r.namespaced(),
                "kind": sub.kind.2,
                "verbs": sub.verbs,
            });
            if (sub.kind.0, sub.kind.1) != (r.group, r.version) {
                entry["group"] = json!(sub.kind.0);
                entry["version"] = json!(sub.kind.1);
            }
            resources.push(entry);
        }
    }
    let group_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }))
}

fn aggregated_list(format: Format, groups: &[(&str, Vec<&str>)]) -> Value {
    let items: Vec<Value> = groups
        .iter()
        .map(|(group, versions)| {
            let versions: Vec<Value> = versions
                .iter()
                .map(|version| {
                    let resources: Vec<Value> = RESOURCES
                        .iter()
                        .filter(|r| r.group == *group && r.version == *version)
                        .map(aggregated_resource)
                        .collect();
                    json!({ "version": version, "freshness": "Current", "resources": resources })
                })
                .collect();
            json!({ "metadata": { "name": group }, "versions": versions })
        })
        .collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format.api_version(),
        "metadata": {},
        "items": items,
    })
}

fn aggregated_resource(r: &ResourceType) -> Value {
    let subresources: Vec<Value> = r
        .subresources
        .iter()
        .map(|sub| {
            json!({
                "subresource": sub.name,
                "responseKind": { "group": sub.kind.0, "version": sub.kind.1, "kind": sub.kind.2 },
                "verbs": sub.verbs,
            })
        })
        .collect();
    json!({
        "resource": r.plural,
        "singularResource": r.singular,
        "scope": match r.scope { Scope::Namespaced => "Namespaced", Scope::Cluster => "Cluster" },
        "responseKind": { "group": r.group, "version": r.version, "kind": r.kind },
        "verbs": r.verbs,
        "shortNames": r.short_names,
        "categories": r.categories,
        "subresources": subresources,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBECTL_132: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
    const KUBECTL_128: &str = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";

    #[test]
    fn negotiation_honours_the_exact_version_asked() {
        assert_eq!(Format::negotiate(KUBECTL_132), Format::AggregatedV2);
        assert_eq!(Format::negotiate(KUBECTL_128), Format::AggregatedV2Beta1);
        assert_eq!(Format::negotiate("application/json, */*"), Format::Legacy);
        assert_eq!(Format::negotiate(""), Format::Legacy);
    }

    #[test]
    fn aggregated_documents_name_their_version() {
        let doc = groups_document(Format::AggregatedV2Beta1);
        assert_eq!(doc["apiVersion"], "apidiscovery.k8s.io/v2beta1");
        let apps = &doc["items"][0];
        assert_eq!(apps["metadata"]["name"], "apps");
        let deploy = &apps["versions"][0]["resources"][0];
        assert_eq!(deploy["resource"], "deployments");
        assert_eq!(deploy["subresources"][0]["responseKind"]["kind"], "Scale");
        let core = core(Format::AggregatedV2);
        assert_eq!(core["items"][0]["metadata"]["name"], "");
        assert!(
            core["items"][0]["versions"][0]["resources"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["resource"] == "pods" && r["shortNames"][0] == "po")
        );
    }

    #[test]
    fn legacy_documents() {
        assert_eq!(core(Format::Legacy)["versions"][0], "v1");
        let groups = groups_document(Format::Legacy);
        assert_eq!(
            groups["groups"][0]["preferredVersion"]["groupVersion"],
            "apps/v1"
        );
        let core_list = resource_list("", "v1").unwrap();
        let names: Vec<&str> = core_list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"pods/status") && names.contains(&"namespaces/finalize"));
        let apps = resource_list("apps", "v1").unwrap();
        let scale = apps["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "deployments/scale")
            .unwrap();
        assert_eq!(scale["group"], "autoscaling");
        assert!(resource_list("apps", "v2").is_none());
        assert!(group_document("apps").is_some() && group_document("nope").is_none());
    }
}
