//! The strategic-merge-patch metadata of slipway's resource subset: which lists merge by which
//! key, which are sets of primitives, and which carry `retainKeys`.
//!
//! Kubernetes reads this from the `patchStrategy`/`patchMergeKey` struct tags of k8s.io/api
//! (core/v1, apps/v1) and k8s.io/apimachinery (meta/v1 ObjectMeta); k8s-openapi does not carry
//! them, so the table below restates those tags. A field absent from the table behaves as an
//! untagged Go field: objects merge key by key and lists are replaced whole (tolerations,
//! containerStatuses, Endpoints subsets, RBAC rules, ...).

/// How a field's list value is patched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchStrategy {
    /// No `patchStrategy` tag: a list in the patch replaces the whole list.
    Replace,
    /// `patchStrategy:"merge"`: a list of objects merges element by element on `key`
    /// (`patchMergeKey`); a list of primitives (`key` is `None`) merges as an ordered set.
    Merge { key: Option<&'static str> },
}

/// Patch metadata for one field of an object.
#[derive(Debug)]
pub struct Field {
    name: &'static str,
    strategy: PatchStrategy,
    retain_keys: bool,
    schema: &'static Schema,
}

impl Field {
    /// The JSON name of the field.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// How a list in this field is patched.
    pub fn strategy(&self) -> PatchStrategy {
        self.strategy
    }

    /// The `patchMergeKey`, for lists of objects merged element by element.
    pub fn merge_key(&self) -> Option<&'static str> {
        match self.strategy {
            PatchStrategy::Merge { key } => key,
            PatchStrategy::Replace => None,
        }
    }

    /// Whether the field is tagged `retainKeys`: a patch generator (kubectl apply) then sends a
    /// `$retainKeys` directive so fields of a union it no longer sets are cleared. Applying a
    /// patch honours `$retainKeys` wherever it appears, as Kubernetes does.
    pub fn retain_keys(&self) -> bool {
        self.retain_keys
    }

    /// The schema of the field's value, or of each element when the value is a list.
    pub fn schema(&self) -> &'static Schema {
        self.schema
    }
}

/// Patch metadata for an object type: the fields that differ from the untagged default.
#[derive(Debug)]
pub struct Schema {
    name: &'static str,
    fields: &'static [Field],
}

impl Schema {
    /// The Go type name the metadata was taken from, for error messages.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The metadata of field `name`, when it is tagged or leads to tagged fields.
    pub fn field(&self, name: &str) -> Option<&'static Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The metadata of the field reached by `path`, descending through objects and list
    /// elements alike (e.g. `["spec", "template", "spec", "containers", "env"]`).
    pub fn field_at(&self, path: &[&str]) -> Option<&'static Field> {
        let (first, rest) = path.split_first()?;
        let field = self.fields.iter().find(|f| f.name == *first)?;
        rest.iter()
            .try_fold(field, |field, name| field.schema.field(name))
    }

    /// The patch strategy and sub-schema of field `name`, falling back to the untagged default.
    pub(crate) fn lookup(&self, name: &str) -> (PatchStrategy, &'static Schema) {
        self.field(name)
            .map_or((PatchStrategy::Replace, &UNTAGGED), |f| {
                (f.strategy, f.schema)
            })
    }
}

const fn object(name: &'static str, schema: &'static Schema) -> Field {
    Field {
        name,
        strategy: PatchStrategy::Replace,
        retain_keys: false,
        schema,
    }
}

const fn retain_keys_object(name: &'static str, schema: &'static Schema) -> Field {
    Field {
        name,
        strategy: PatchStrategy::Replace,
        retain_keys: true,
        schema,
    }
}

const fn merge_by(name: &'static str, key: &'static str, schema: &'static Schema) -> Field {
    Field {
        name,
        strategy: PatchStrategy::Merge { key: Some(key) },
        retain_keys: false,
        schema,
    }
}

const fn merge_by_retain_keys(
    name: &'static str,
    key: &'static str,
    schema: &'static Schema,
) -> Field {
    Field {
        name,
        strategy: PatchStrategy::Merge { key: Some(key) },
        retain_keys: true,
        schema,
    }
}

const fn primitive_set(name: &'static str) -> Field {
    Field {
        name,
        strategy: PatchStrategy::Merge { key: None },
        retain_keys: false,
        schema: &UNTAGGED,
    }
}

/// Any type without tagged fields below it (labels, resources, selectors, ...).
static UNTAGGED: Schema = Schema {
    name: "object",
    fields: &[],
};

static OBJECT_META: Schema = Schema {
    name: "ObjectMeta",
    fields: &[
        merge_by("ownerReferences", "uid", &UNTAGGED),
        primitive_set("finalizers"),
    ],
};

/// Container and EphemeralContainer (whose inlined EphemeralContainerCommon repeats the tags).
static CONTAINER: Schema = Schema {
    name: "Container",
    fields: &[
        merge_by("ports", "containerPort", &UNTAGGED),
        merge_by("env", "name", &UNTAGGED),
        merge_by("volumeMounts", "mountPath", &UNTAGGED),
        merge_by("volumeDevices", "devicePath", &UNTAGGED),
    ],
};

static POD_SPEC: Schema = Schema {
    name: "PodSpec",
    fields: &[
        merge_by_retain_keys("volumes", "name", &UNTAGGED),
        merge_by("initContainers", "name", &CONTAINER),
        merge_by("containers", "name", &CONTAINER),
        merge_by("ephemeralContainers", "name", &CONTAINER),
        merge_by("imagePullSecrets", "name", &UNTAGGED),
        merge_by("hostAliases", "ip", &UNTAGGED),
        merge_by("topologySpreadConstraints", "topologyKey", &UNTAGGED),
        merge_by("schedulingGates", "name", &UNTAGGED),
        merge_by_retain_keys("resourceClaims", "name", &UNTAGGED),
    ],
};

static POD_STATUS: Schema = Schema {
    name: "PodStatus",
    fields: &[
        merge_by("conditions", "type", &UNTAGGED),
        merge_by("hostIPs", "ip", &UNTAGGED),
        merge_by("podIPs", "ip", &UNTAGGED),
        merge_by_retain_keys("resourceClaimStatuses", "name", &UNTAGGED),
    ],
};

static POD_TEMPLATE_SPEC: Schema = Schema {
    name: "PodTemplateSpec",
    fields: &[object("metadata", &OBJECT_META), object("spec", &POD_SPEC)],
};

/// Status types whose only tagged field is `conditions`, merged by `type`.
static CONDITIONS_STATUS: Schema = Schema {
    name: "Status",
    fields: &[merge_by("conditions", "type", &UNTAGGED)],
};

static POD: Schema = Schema {
    name: "Pod",
    fields: &[
        object("metadata", &OBJECT_META),
        object("spec", &POD_SPEC),
        object("status", &POD_STATUS),
    ],
};

static SERVICE: Schema = Schema {
    name: "Service",
    fields: &[
        object("metadata", &OBJECT_META),
        object(
            "spec",
            &Schema {
                name: "ServiceSpec",
                fields: &[merge_by("ports", "port", &UNTAGGED)],
            },
        ),
        object("status", &CONDITIONS_STATUS),
    ],
};

static NAMESPACE: Schema = Schema {
    name: "Namespace",
    fields: &[
        object("metadata", &OBJECT_META),
        object("status", &CONDITIONS_STATUS),
    ],
};

static NODE: Schema = Schema {
    name: "Node",
    fields: &[
        object("metadata", &OBJECT_META),
        object(
            "spec",
            &Schema {
                name: "NodeSpec",
                fields: &[primitive_set("podCIDRs")],
            },
        ),
        object(
            "status",
            &Schema {
                name: "NodeStatus",
                fields: &[
                    merge_by("conditions", "type", &UNTAGGED),
                    merge_by("addresses", "type", &UNTAGGED),
                ],
            },
        ),
    ],
};

static SERVICE_ACCOUNT: Schema = Schema {
    name: "ServiceAccount",
    fields: &[
        object("metadata", &OBJECT_META),
        merge_by("secrets", "name", &UNTAGGED),
    ],
};

static DEPLOYMENT: Schema = Schema {
    name: "Deployment",
    fields: &[
        object("metadata", &OBJECT_META),
        object(
            "spec",
            &Schema {
                name: "DeploymentSpec",
                fields: &[
                    object("template", &POD_TEMPLATE_SPEC),
                    retain_keys_object("strategy", &UNTAGGED),
                ],
            },
        ),
        object("status", &CONDITIONS_STATUS),
    ],
};

static REPLICA_SET: Schema = Schema {
    name: "ReplicaSet",
    fields: &[
        object("metadata", &OBJECT_META),
        object(
            "spec",
            &Schema {
                name: "ReplicaSetSpec",
                fields: &[object("template", &POD_TEMPLATE_SPEC)],
            },
        ),
        object("status", &CONDITIONS_STATUS),
    ],
};

/// Kinds whose only tagged fields are in `metadata`.
static METADATA_ONLY: Schema = Schema {
    name: "object",
    fields: &[object("metadata", &OBJECT_META)],
};

/// The schema of a kind slipway serves, by `apiVersion` and `kind`.
pub(crate) fn lookup_kind(api_version: &str, kind: &str) -> Option<&'static Schema> {
    let schema = match (api_version, kind) {
        ("v1", "Pod") => &POD,
        ("v1", "Service") => &SERVICE,
        ("v1", "Namespace") => &NAMESPACE,
        ("v1", "Node") => &NODE,
        ("v1", "ServiceAccount") => &SERVICE_ACCOUNT,
        ("apps/v1", "Deployment") => &DEPLOYMENT,
        ("apps/v1", "ReplicaSet") => &REPLICA_SET,
        ("v1", "Endpoints" | "ConfigMap" | "Secret" | "ResourceQuota" | "LimitRange" | "Event")
        | ("coordination.k8s.io/v1", "Lease")
        | ("networking.k8s.io/v1", "Ingress")
        | (
            "rbac.authorization.k8s.io/v1",
            "Role" | "RoleBinding" | "ClusterRole" | "ClusterRoleBinding",
        )
        | ("autoscaling/v1", "Scale") => &METADATA_ONLY,
        _ => return None,
    };
    Some(schema)
}

#[cfg(test)]
mod tests {
    use super::{PatchStrategy, lookup_kind};

    /// Each row restates a struct tag of k8s.io/api or k8s.io/apimachinery; `None` as the
    /// strategy marks a field deliberately left untagged upstream (replaced whole).
    #[test]
    fn table_matches_upstream_struct_tags() {
        use PatchStrategy::{Merge, Replace};
        let rows: &[(&str, &str, &str, PatchStrategy, bool)] = &[
            (
                "v1",
                "Pod",
                "metadata.ownerReferences",
                Merge { key: Some("uid") },
                false,
            ),
            (
                "v1",
                "Pod",
                "metadata.finalizers",
                Merge { key: None },
                false,
            ),
            (
                "v1",
                "Pod",
                "spec.containers",
                Merge { key: Some("name") },
                false,
            ),
            (
                "v1",
                "Pod",
                "spec.initContainers",
                Merge { key: Some("name") },
                false,
            ),
            (
                "v1",
                "Pod",
                "spec.ephemeralContainers",
                Merge { key: Some("name") },
                false,
            ),
            (
                "v1",
                "Pod",
                "spec.containers.ports",
                Merge {
                    key: Some("containerPort"),
                },
                false,
            ),
            (
                "v1",
                "Pod",
                "spec.containers.env",
                Merge { key: Some("name") },
                false,
            ),
            (
                "v1",
                "Pod",
                "spec.containers.volumeMounts",
                Merge {
                    key: Some("mountPath"),
                },
                false,
            ),
            (
                "v1",
                "Pod",
                "spec.containers.volumeDevices",
                Merge {
                    key: Some("devicePath"),
                },
                false,
            ),
            (
                "v1",
                "Pod",
                "spec.initContainers.env",
                Merge { key: Some("name") },
                false,
            ),
            (
                "v1",
                "Pod",
                "spec.ephemeralContainers.ports",
                Merge {
                    key: Some("containerPort"),
                },
                false,
            ),
            ("v1", "Pod", "spec.containers.envFrom", Replace, false),
            ("v1", "Pod", "spec.containers.args", Replace, false),
            (
                "v1",
                "Pod",
                "spec.volumes",
                Merge { key: Some("name") },
                true,
            ),
            (
                "v1",
                "Pod",
                "spec.imagePullSecrets",
                Merge { key: Some("name") },
                false,
            ),
            (
                "v1",
                "Pod",
                "spec.hostAliases",
                Merge { key: Some("ip") },
                false,
            ),
            (
                "v1",
                "Pod",
                "spec.topologySpreadConstraints",
                Merge {
                    key: Some("topologyKey"),
                },
                false,
            ),
            (
                "v1",
                "Pod",
                "spec.schedulingGates",
                Merge { key: Some("name") },
                false,
            ),
            (
                "v1",
                "Pod",
                "spec.resourceClaims",
                Merge { key: Some("name") },
                true,
            ),
            ("v1", "Pod", "spec.tolerations", Replace, false),
            ("v1", "Pod", "spec.readinessGates", Replace, false),
            (
                "v1",
                "Pod",
                "status.conditions",
                Merge { key: Some("type") },
                false,
            ),
            (
                "v1",
                "Pod",
                "status.podIPs",
                Merge { key: Some("ip") },
                false,
            ),
            (
                "v1",
                "Pod",
                "status.hostIPs",
                Merge { key: Some("ip") },
                false,
            ),
            (
                "v1",
                "Pod",
                "status.resourceClaimStatuses",
                Merge { key: Some("name") },
                true,
            ),
            ("v1", "Pod", "status.containerStatuses", Replace, false),
            (
                "v1",
                "Service",
                "spec.ports",
                Merge { key: Some("port") },
                false,
            ),
            (
                "v1",
                "Service",
                "status.conditions",
                Merge { key: Some("type") },
                false,
            ),
            ("v1", "Service", "spec.externalIPs", Replace, false),
            (
                "v1",
                "Namespace",
                "status.conditions",
                Merge { key: Some("type") },
                false,
            ),
            ("v1", "Namespace", "spec.finalizers", Replace, false),
            ("v1", "Node", "spec.podCIDRs", Merge { key: None }, false),
            ("v1", "Node", "spec.taints", Replace, false),
            (
                "v1",
                "Node",
                "status.conditions",
                Merge { key: Some("type") },
                false,
            ),
            (
                "v1",
                "Node",
                "status.addresses",
                Merge { key: Some("type") },
                false,
            ),
            (
                "v1",
                "ServiceAccount",
                "secrets",
                Merge { key: Some("name") },
                false,
            ),
            ("v1", "ServiceAccount", "imagePullSecrets", Replace, false),
            ("v1", "Endpoints", "subsets", Replace, false),
            (
                "v1",
                "ConfigMap",
                "metadata.finalizers",
                Merge { key: None },
                false,
            ),
            ("apps/v1", "Deployment", "spec.strategy", Replace, true),
            (
                "apps/v1",
                "Deployment",
                "spec.template.spec.containers",
                Merge { key: Some("name") },
                false,
            ),
            (
                "apps/v1",
                "Deployment",
                "spec.template.spec.containers.env",
                Merge { key: Some("name") },
                false,
            ),
            (
                "apps/v1",
                "Deployment",
                "spec.template.spec.volumes",
                Merge { key: Some("name") },
                true,
            ),
            (
                "apps/v1",
                "Deployment",
                "spec.template.metadata.finalizers",
                Merge { key: None },
                false,
            ),
            (
                "apps/v1",
                "Deployment",
                "status.conditions",
                Merge { key: Some("type") },
                false,
            ),
            (
                "apps/v1",
                "ReplicaSet",
                "spec.template.spec.initContainers",
                Merge { key: Some("name") },
                false,
            ),
            (
                "apps/v1",
                "ReplicaSet",
                "status.conditions",
                Merge { key: Some("type") },
                false,
            ),
            (
                "coordination.k8s.io/v1",
                "Lease",
                "metadata.ownerReferences",
                Merge { key: Some("uid") },
                false,
            ),
            (
                "networking.k8s.io/v1",
                "Ingress",
                "spec.rules",
                Replace,
                false,
            ),
            (
                "rbac.authorization.k8s.io/v1",
                "ClusterRole",
                "rules",
                Replace,
                false,
            ),
            (
                "autoscaling/v1",
                "Scale",
                "metadata.finalizers",
                Merge { key: None },
                false,
            ),
        ];
        for &(api_version, kind, path, strategy, retain_keys) in rows {
            let schema = lookup_kind(api_version, kind).unwrap();
            let path: Vec<&str> = path.split('.').collect();
            match schema.field_at(&path) {
                Some(field) => {
                    assert_eq!(field.strategy(), strategy, "{kind} {path:?}");
                    assert_eq!(field.retain_keys(), retain_keys, "{kind} {path:?}");
                    assert_eq!(field.name(), *path.last().unwrap());
                    if let Merge { key } = strategy {
                        assert_eq!(field.merge_key(), key);
                    }
                }
                None => assert_eq!((strategy, retain_keys), (Replace, false), "{kind} {path:?}"),
            }
        }
    }

    #[test]
    fn every_served_kind_has_a_schema() {
        let kinds = [
            ("v1", "Namespace"),
            ("v1", "Pod"),
            ("v1", "Service"),
            ("v1", "Endpoints"),
            ("v1", "ConfigMap"),
            ("v1", "Secret"),
            ("v1", "ResourceQuota"),
            ("v1", "LimitRange"),
            ("v1", "Node"),
            ("v1", "Event"),
            ("v1", "ServiceAccount"),
            ("apps/v1", "Deployment"),
            ("apps/v1", "ReplicaSet"),
            ("coordination.k8s.io/v1", "Lease"),
            ("networking.k8s.io/v1", "Ingress"),
            ("rbac.authorization.k8s.io/v1", "Role"),
            ("rbac.authorization.k8s.io/v1", "RoleBinding"),
            ("rbac.authorization.k8s.io/v1", "ClusterRole"),
            ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
            ("autoscaling/v1", "Scale"),
        ];
        for (api_version, kind) in kinds {
            let schema = lookup_kind(api_version, kind).unwrap();
            assert!(schema.field("metadata").is_some(), "{kind}");
        }
        for (api_version, kind) in [
            ("apps/v1", "Pod"),
            ("v1", "Deployment"),
            ("example.com/v1", "Widget"),
        ] {
            assert!(
                lookup_kind(api_version, kind).is_none(),
                "{api_version} {kind}"
            );
        }
    }
}
