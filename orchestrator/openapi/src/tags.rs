//! The list, map and patch markers of the k8s.io/api and k8s.io/apimachinery v0.33.0 struct
//! tags (`patchStrategy`, `patchMergeKey`, `+listType`, `+listMapKey`, `+mapType`,
//! `+structType`), which upstream's OpenAPI carries as `x-kubernetes-*` extensions and
//! k8s-openapi drops. kubectl computes strategic merge patches from these, so a missing merge
//! key would make it replace a list the server merges.
//!
//! Rows restate the Go tags of the types our documents contain; a test checks that each row
//! lands on a property of some served document.

use serde_json::{Map, Value};

/// The markers of one struct field.
pub(crate) struct FieldTags {
    pub(crate) schema: &'static str,
    pub(crate) field: &'static str,
    list_type: Option<&'static str>,
    list_map_keys: &'static [&'static str],
    patch_strategy: Option<&'static str>,
    patch_merge_key: Option<&'static str>,
    map_type: Option<&'static str>,
}

impl FieldTags {
    /// Adds the markers to the property schema of the field.
    pub(crate) fn apply(&self, property: &mut Map<String, Value>) {
        let mut set = |key: &str, value: Value| {
            property.insert(key.to_owned(), value);
        };
        if let Some(list_type) = self.list_type {
            set("x-kubernetes-list-type", list_type.into());
        }
        if !self.list_map_keys.is_empty() {
            set(
                "x-kubernetes-list-map-keys",
                self.list_map_keys
                    .iter()
                    .copied()
                    .map(Value::from)
                    .collect(),
            );
        }
        if let Some(strategy) = self.patch_strategy {
            set("x-kubernetes-patch-strategy", strategy.into());
        }
        if let Some(key) = self.patch_merge_key {
            set("x-kubernetes-patch-merge-key", key.into());
        }
        if let Some(map_type) = self.map_type {
            set("x-kubernetes-map-type", map_type.into());
        }
    }
}

/// `+listType=atomic`: the list is replaced whole.
const fn atomic(schema: &'static str, field: &'static str) -> FieldTags {
    FieldTags {
        schema,
        field,
        list_type: Some("atomic"),
        list_map_keys: &[],
        patch_strategy: None,
        patch_merge_key: None,
        map_type: None,
    }
}

/// `+mapType` (or `+structType`) on a field.
const fn map_type(schema: &'static str, field: &'static str, map_type: &'static str) -> FieldTags {
    FieldTags {
        schema,
        field,
        list_type: None,
        list_map_keys: &[],
        patch_strategy: None,
        patch_merge_key: None,
        map_type: Some(map_type),
    }
}

/// A list merged element by element, on `patch_merge_key` by strategic merge patch and on
/// `list_map_keys` by server-side apply.
const fn merge_map(
    schema: &'static str,
    field: &'static str,
    patch_strategy: &'static str,
    patch_merge_key: &'static str,
    list_map_keys: &'static [&'static str],
) -> FieldTags {
    FieldTags {
        schema,
        field,
        list_type: Some("map"),
        list_map_keys,
        patch_strategy: Some(patch_strategy),
        patch_merge_key: Some(patch_merge_key),
        map_type: None,
    }
}

pub(crate) static TAGS: &[FieldTags] = &[
    FieldTags {
        schema: "io.k8s.api.apps.v1.DeploymentSpec",
        field: "strategy",
        list_type: None,
        list_map_keys: &[],
        patch_strategy: Some("retainKeys"),
        patch_merge_key: None,
        map_type: None,
    },
    merge_map(
        "io.k8s.api.apps.v1.DeploymentStatus",
        "conditions",
        "merge",
        "type",
        &["type"],
    ),
    merge_map(
        "io.k8s.api.apps.v1.ReplicaSetStatus",
        "conditions",
        "merge",
        "type",
        &["type"],
    ),
    atomic("io.k8s.api.authentication.v1.UserInfo", "groups"),
    atomic(
        "io.k8s.api.authorization.v1.FieldSelectorAttributes",
        "requirements",
    ),
    atomic(
        "io.k8s.api.authorization.v1.LabelSelectorAttributes",
        "requirements",
    ),
    atomic(
        "io.k8s.api.authorization.v1.NonResourceRule",
        "nonResourceURLs",
    ),
    atomic("io.k8s.api.authorization.v1.NonResourceRule", "verbs"),
    atomic("io.k8s.api.authorization.v1.ResourceRule", "apiGroups"),
    atomic("io.k8s.api.authorization.v1.ResourceRule", "resourceNames"),
    atomic("io.k8s.api.authorization.v1.ResourceRule", "resources"),
    atomic("io.k8s.api.authorization.v1.ResourceRule", "verbs"),
    atomic(
        "io.k8s.api.authorization.v1.SubjectRulesReviewStatus",
        "nonResourceRules",
    ),
    atomic(
        "io.k8s.api.authorization.v1.SubjectRulesReviewStatus",
        "resourceRules",
    ),
    atomic("io.k8s.api.core.v1.Capabilities", "add"),
    atomic("io.k8s.api.core.v1.Capabilities", "drop"),
    atomic("io.k8s.api.core.v1.CephFSVolumeSource", "monitors"),
    atomic("io.k8s.api.core.v1.ConfigMapProjection", "items"),
    atomic("io.k8s.api.core.v1.ConfigMapVolumeSource", "items"),
    atomic("io.k8s.api.core.v1.Container", "args"),
    atomic("io.k8s.api.core.v1.Container", "command"),
    merge_map(
        "io.k8s.api.core.v1.Container",
        "env",
        "merge",
        "name",
        &["name"],
    ),
    atomic("io.k8s.api.core.v1.Container", "envFrom"),
    merge_map(
        "io.k8s.api.core.v1.Container",
        "ports",
        "merge",
        "containerPort",
        &["containerPort", "protocol"],
    ),
    atomic("io.k8s.api.core.v1.Container", "resizePolicy"),
    merge_map(
        "io.k8s.api.core.v1.Container",
        "volumeDevices",
        "merge",
        "devicePath",
        &["devicePath"],
    ),
    merge_map(
        "io.k8s.api.core.v1.Container",
        "volumeMounts",
        "merge",
        "mountPath",
        &["mountPath"],
    ),
    atomic("io.k8s.api.core.v1.ContainerImage", "names"),
    merge_map(
        "io.k8s.api.core.v1.ContainerStatus",
        "allocatedResourcesStatus",
        "merge",
        "name",
        &["name"],
    ),
    merge_map(
        "io.k8s.api.core.v1.ContainerStatus",
        "volumeMounts",
        "merge",
        "mountPath",
        &["mountPath"],
    ),
    atomic("io.k8s.api.core.v1.DownwardAPIProjection", "items"),
    atomic("io.k8s.api.core.v1.DownwardAPIVolumeSource", "items"),
    atomic("io.k8s.api.core.v1.EndpointSubset", "addresses"),
    atomic("io.k8s.api.core.v1.EndpointSubset", "notReadyAddresses"),
    atomic("io.k8s.api.core.v1.EndpointSubset", "ports"),
    atomic("io.k8s.api.core.v1.Endpoints", "subsets"),
    atomic("io.k8s.api.core.v1.EphemeralContainer", "args"),
    atomic("io.k8s.api.core.v1.EphemeralContainer", "command"),
    merge_map(
        "io.k8s.api.core.v1.EphemeralContainer",
        "env",
        "merge",
        "name",
        &["name"],
    ),
    atomic("io.k8s.api.core.v1.EphemeralContainer", "envFrom"),
    merge_map(
        "io.k8s.api.core.v1.EphemeralContainer",
        "ports",
        "merge",
        "containerPort",
        &["containerPort", "protocol"],
    ),
    atomic("io.k8s.api.core.v1.EphemeralContainer", "resizePolicy"),
    merge_map(
        "io.k8s.api.core.v1.EphemeralContainer",
        "volumeDevices",
        "merge",
        "devicePath",
        &["devicePath"],
    ),
    merge_map(
        "io.k8s.api.core.v1.EphemeralContainer",
        "volumeMounts",
        "merge",
        "mountPath",
        &["mountPath"],
    ),
    atomic("io.k8s.api.core.v1.ExecAction", "command"),
    atomic("io.k8s.api.core.v1.FCVolumeSource", "targetWWNs"),
    atomic("io.k8s.api.core.v1.FCVolumeSource", "wwids"),
    atomic("io.k8s.api.core.v1.HTTPGetAction", "httpHeaders"),
    atomic("io.k8s.api.core.v1.HostAlias", "hostnames"),
    atomic("io.k8s.api.core.v1.ISCSIVolumeSource", "portals"),
    atomic("io.k8s.api.core.v1.LimitRangeSpec", "limits"),
    atomic(
        "io.k8s.api.core.v1.LinuxContainerUser",
        "supplementalGroups",
    ),
    atomic("io.k8s.api.core.v1.LoadBalancerIngress", "ports"),
    atomic("io.k8s.api.core.v1.LoadBalancerStatus", "ingress"),
    atomic("io.k8s.api.core.v1.NamespaceSpec", "finalizers"),
    merge_map(
        "io.k8s.api.core.v1.NamespaceStatus",
        "conditions",
        "merge",
        "type",
        &["type"],
    ),
    atomic(
        "io.k8s.api.core.v1.NodeAffinity",
        "preferredDuringSchedulingIgnoredDuringExecution",
    ),
    atomic("io.k8s.api.core.v1.NodeSelector", "nodeSelectorTerms"),
    atomic("io.k8s.api.core.v1.NodeSelectorRequirement", "values"),
    atomic("io.k8s.api.core.v1.NodeSelectorTerm", "matchExpressions"),
    atomic("io.k8s.api.core.v1.NodeSelectorTerm", "matchFields"),
    FieldTags {
        schema: "io.k8s.api.core.v1.NodeSpec",
        field: "podCIDRs",
        list_type: Some("set"),
        list_map_keys: &[],
        patch_strategy: Some("merge"),
        patch_merge_key: None,
        map_type: None,
    },
    atomic("io.k8s.api.core.v1.NodeSpec", "taints"),
    merge_map(
        "io.k8s.api.core.v1.NodeStatus",
        "addresses",
        "merge",
        "type",
        &["type"],
    ),
    merge_map(
        "io.k8s.api.core.v1.NodeStatus",
        "conditions",
        "merge",
        "type",
        &["type"],
    ),
    atomic("io.k8s.api.core.v1.NodeStatus", "images"),
    atomic("io.k8s.api.core.v1.NodeStatus", "runtimeHandlers"),
    atomic("io.k8s.api.core.v1.NodeStatus", "volumesAttached"),
    atomic("io.k8s.api.core.v1.NodeStatus", "volumesInUse"),
    atomic(
        "io.k8s.api.core.v1.PersistentVolumeClaimSpec",
        "accessModes",
    ),
    atomic(
        "io.k8s.api.core.v1.PodAffinity",
        "preferredDuringSchedulingIgnoredDuringExecution",
    ),
    atomic(
        "io.k8s.api.core.v1.PodAffinity",
        "requiredDuringSchedulingIgnoredDuringExecution",
    ),
    atomic("io.k8s.api.core.v1.PodAffinityTerm", "matchLabelKeys"),
    atomic("io.k8s.api.core.v1.PodAffinityTerm", "mismatchLabelKeys"),
    atomic("io.k8s.api.core.v1.PodAffinityTerm", "namespaces"),
    atomic(
        "io.k8s.api.core.v1.PodAntiAffinity",
        "preferredDuringSchedulingIgnoredDuringExecution",
    ),
    atomic(
        "io.k8s.api.core.v1.PodAntiAffinity",
        "requiredDuringSchedulingIgnoredDuringExecution",
    ),
    atomic("io.k8s.api.core.v1.PodDNSConfig", "nameservers"),
    atomic("io.k8s.api.core.v1.PodDNSConfig", "options"),
    atomic("io.k8s.api.core.v1.PodDNSConfig", "searches"),
    atomic(
        "io.k8s.api.core.v1.PodSecurityContext",
        "supplementalGroups",
    ),
    atomic("io.k8s.api.core.v1.PodSecurityContext", "sysctls"),
    merge_map(
        "io.k8s.api.core.v1.PodSpec",
        "containers",
        "merge",
        "name",
        &["name"],
    ),
    merge_map(
        "io.k8s.api.core.v1.PodSpec",
        "ephemeralContainers",
        "merge",
        "name",
        &["name"],
    ),
    merge_map(
        "io.k8s.api.core.v1.PodSpec",
        "hostAliases",
        "merge",
        "ip",
        &["ip"],
    ),
    merge_map(
        "io.k8s.api.core.v1.PodSpec",
        "imagePullSecrets",
        "merge",
        "name",
        &["name"],
    ),
    merge_map(
        "io.k8s.api.core.v1.PodSpec",
        "initContainers",
        "merge",
        "name",
        &["name"],
    ),
    map_type("io.k8s.api.core.v1.PodSpec", "nodeSelector", "atomic"),
    atomic("io.k8s.api.core.v1.PodSpec", "readinessGates"),
    merge_map(
        "io.k8s.api.core.v1.PodSpec",
        "resourceClaims",
        "merge,retainKeys",
        "name",
        &["name"],
    ),
    merge_map(
        "io.k8s.api.core.v1.PodSpec",
        "schedulingGates",
        "merge",
        "name",
        &["name"],
    ),
    atomic("io.k8s.api.core.v1.PodSpec", "tolerations"),
    merge_map(
        "io.k8s.api.core.v1.PodSpec",
        "topologySpreadConstraints",
        "merge",
        "topologyKey",
        &["topologyKey", "whenUnsatisfiable"],
    ),
    merge_map(
        "io.k8s.api.core.v1.PodSpec",
        "volumes",
        "merge,retainKeys",
        "name",
        &["name"],
    ),
    merge_map(
        "io.k8s.api.core.v1.PodStatus",
        "conditions",
        "merge",
        "type",
        &["type"],
    ),
    atomic("io.k8s.api.core.v1.PodStatus", "containerStatuses"),
    atomic("io.k8s.api.core.v1.PodStatus", "ephemeralContainerStatuses"),
    FieldTags {
        schema: "io.k8s.api.core.v1.PodStatus",
        field: "hostIPs",
        list_type: Some("atomic"),
        list_map_keys: &[],
        patch_strategy: Some("merge"),
        patch_merge_key: Some("ip"),
        map_type: None,
    },
    atomic("io.k8s.api.core.v1.PodStatus", "initContainerStatuses"),
    merge_map(
        "io.k8s.api.core.v1.PodStatus",
        "podIPs",
        "merge",
        "ip",
        &["ip"],
    ),
    merge_map(
        "io.k8s.api.core.v1.PodStatus",
        "resourceClaimStatuses",
        "merge,retainKeys",
        "name",
        &["name"],
    ),
    atomic("io.k8s.api.core.v1.ProjectedVolumeSource", "sources"),
    atomic("io.k8s.api.core.v1.RBDVolumeSource", "monitors"),
    atomic("io.k8s.api.core.v1.ResourceQuotaSpec", "scopes"),
    FieldTags {
        schema: "io.k8s.api.core.v1.ResourceRequirements",
        field: "claims",
        list_type: Some("map"),
        list_map_keys: &["name"],
        patch_strategy: None,
        patch_merge_key: None,
        map_type: None,
    },
    FieldTags {
        schema: "io.k8s.api.core.v1.ResourceStatus",
        field: "resources",
        list_type: Some("map"),
        list_map_keys: &["resourceID"],
        patch_strategy: None,
        patch_merge_key: None,
        map_type: None,
    },
    atomic("io.k8s.api.core.v1.ScopeSelector", "matchExpressions"),
    atomic(
        "io.k8s.api.core.v1.ScopedResourceSelectorRequirement",
        "values",
    ),
    atomic("io.k8s.api.core.v1.SecretProjection", "items"),
    atomic("io.k8s.api.core.v1.SecretVolumeSource", "items"),
    atomic("io.k8s.api.core.v1.ServiceAccount", "imagePullSecrets"),
    merge_map(
        "io.k8s.api.core.v1.ServiceAccount",
        "secrets",
        "merge",
        "name",
        &["name"],
    ),
    atomic("io.k8s.api.core.v1.ServiceSpec", "clusterIPs"),
    atomic("io.k8s.api.core.v1.ServiceSpec", "externalIPs"),
    atomic("io.k8s.api.core.v1.ServiceSpec", "ipFamilies"),
    atomic("io.k8s.api.core.v1.ServiceSpec", "loadBalancerSourceRanges"),
    merge_map(
        "io.k8s.api.core.v1.ServiceSpec",
        "ports",
        "merge",
        "port",
        &["port", "protocol"],
    ),
    map_type("io.k8s.api.core.v1.ServiceSpec", "selector", "atomic"),
    merge_map(
        "io.k8s.api.core.v1.ServiceStatus",
        "conditions",
        "merge",
        "type",
        &["type"],
    ),
    atomic(
        "io.k8s.api.core.v1.TopologySpreadConstraint",
        "matchLabelKeys",
    ),
    atomic("io.k8s.api.networking.v1.HTTPIngressRuleValue", "paths"),
    atomic(
        "io.k8s.api.networking.v1.IngressLoadBalancerIngress",
        "ports",
    ),
    atomic(
        "io.k8s.api.networking.v1.IngressLoadBalancerStatus",
        "ingress",
    ),
    atomic("io.k8s.api.networking.v1.IngressSpec", "rules"),
    atomic("io.k8s.api.networking.v1.IngressSpec", "tls"),
    atomic("io.k8s.api.networking.v1.IngressTLS", "hosts"),
    atomic("io.k8s.api.rbac.v1.AggregationRule", "clusterRoleSelectors"),
    atomic("io.k8s.api.rbac.v1.ClusterRole", "rules"),
    atomic("io.k8s.api.rbac.v1.ClusterRoleBinding", "subjects"),
    atomic("io.k8s.api.rbac.v1.PolicyRule", "apiGroups"),
    atomic("io.k8s.api.rbac.v1.PolicyRule", "nonResourceURLs"),
    atomic("io.k8s.api.rbac.v1.PolicyRule", "resourceNames"),
    atomic("io.k8s.api.rbac.v1.PolicyRule", "resources"),
    atomic("io.k8s.api.rbac.v1.PolicyRule", "verbs"),
    atomic("io.k8s.api.rbac.v1.Role", "rules"),
    atomic("io.k8s.api.rbac.v1.RoleBinding", "subjects"),
    atomic(
        "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
        "dryRun",
    ),
    atomic(
        "io.k8s.apimachinery.pkg.apis.meta.v1.FieldSelectorRequirement",
        "values",
    ),
    atomic(
        "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector",
        "matchExpressions",
    ),
    atomic(
        "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelectorRequirement",
        "values",
    ),
    FieldTags {
        schema: "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        field: "finalizers",
        list_type: Some("set"),
        list_map_keys: &[],
        patch_strategy: Some("merge"),
        patch_merge_key: None,
        map_type: None,
    },
    atomic(
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "managedFields",
    ),
    merge_map(
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "ownerReferences",
        "merge",
        "uid",
        &["uid"],
    ),
    atomic("io.k8s.apimachinery.pkg.apis.meta.v1.Status", "details"),
    atomic(
        "io.k8s.apimachinery.pkg.apis.meta.v1.StatusDetails",
        "causes",
    ),
];

/// `+structType` / `+mapType` markers on types, as `x-kubernetes-map-type` of their schema.
pub(crate) static TYPE_TAGS: &[(&str, &str)] = &[
    ("io.k8s.api.core.v1.ConfigMapKeySelector", "atomic"),
    ("io.k8s.api.core.v1.EndpointAddress", "atomic"),
    ("io.k8s.api.core.v1.EndpointPort", "atomic"),
    ("io.k8s.api.core.v1.LocalObjectReference", "atomic"),
    ("io.k8s.api.core.v1.NodeSelector", "atomic"),
    ("io.k8s.api.core.v1.NodeSelectorTerm", "atomic"),
    ("io.k8s.api.core.v1.ObjectFieldSelector", "atomic"),
    ("io.k8s.api.core.v1.ObjectReference", "atomic"),
    ("io.k8s.api.core.v1.ResourceFieldSelector", "atomic"),
    ("io.k8s.api.core.v1.ScopeSelector", "atomic"),
    ("io.k8s.api.core.v1.SecretKeySelector", "atomic"),
    ("io.k8s.api.core.v1.TypedLocalObjectReference", "atomic"),
    ("io.k8s.api.networking.v1.ServiceBackendPort", "atomic"),
    ("io.k8s.api.rbac.v1.RoleRef", "atomic"),
    ("io.k8s.api.rbac.v1.Subject", "atomic"),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector",
        "atomic",
    ),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.OwnerReference",
        "atomic",
    ),
];

#[cfg(test)]
mod tests {
    use super::{TAGS, TYPE_TAGS};

    /// A row that lands nowhere restates a tag of a type or field our documents lack (or
    /// misspells one), and its list would silently fall back to replace-whole.
    #[test]
    fn every_row_lands_on_a_served_schema() {
        let documents: Vec<serde_json::Value> = crate::documents()
            .iter()
            .map(|doc| serde_json::from_slice(&doc.bytes).expect("JSON"))
            .collect();
        let schema = |name: &str| {
            documents
                .iter()
                .map(|doc| &doc["components"]["schemas"][name])
                .find(|schema| schema.is_object())
        };
        for tag in TAGS {
            let property = schema(tag.schema)
                .map(|schema| &schema["properties"][tag.field])
                .unwrap_or_else(|| panic!("{} is in no document", tag.schema));
            assert!(property.is_object(), "{}.{}", tag.schema, tag.field);
            let mut expected = serde_json::Map::new();
            tag.apply(&mut expected);
            for (key, value) in expected {
                assert_eq!(property[&key], value, "{}.{} {key}", tag.schema, tag.field);
            }
        }
        for (name, map_type) in TYPE_TAGS {
            let schema = schema(name).unwrap_or_else(|| panic!("{name} is in no document"));
            assert_eq!(schema["x-kubernetes-map-type"], *map_type, "{name}");
        }
    }
}
