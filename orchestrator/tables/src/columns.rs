//! The column definitions of each printer, as upstream's `printers.go` declares them for
//! Kubernetes 1.32: names, types, formats and priorities are exact; descriptions are the
//! API field documentation they point at (kubectl never shows them).

use serde_json::{Value, json};

/// One `meta.k8s.io/v1` `TableColumnDefinition`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColumnDefinition {
    /// Human-readable header; kubectl upper-cases it.
    pub name: &'static str,
    /// OpenAPI type of the cells: `string`, `integer`, `date`, ...
    pub column_type: &'static str,
    /// OpenAPI format; `name` marks the column holding the object's name.
    pub format: &'static str,
    /// What the column shows.
    pub description: &'static str,
    /// `0` for the default view, `1` for columns kubectl shows only with `-o wide`.
    pub priority: u32,
}

impl ColumnDefinition {
    /// The wire form; every key is always present, as Go writes them.
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.column_type,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }

    const fn string(name: &'static str, description: &'static str) -> Self {
        Self {
            name,
            column_type: "string",
            format: "",
            description,
            priority: 0,
        }
    }

    const fn integer(name: &'static str, description: &'static str) -> Self {
        Self {
            name,
            column_type: "integer",
            format: "",
            description,
            priority: 0,
        }
    }

    const fn wide(self) -> Self {
        Self {
            priority: 1,
            ..self
        }
    }
}

const NAME_DOC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const CREATED_DOC: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";
const CONTAINERS_DOC: &str = "Names of each container in the template.";
const IMAGES_DOC: &str = "Images referenced by each container in the template.";

const NAME: ColumnDefinition = ColumnDefinition {
    name: "Name",
    column_type: "string",
    format: "name",
    description: NAME_DOC,
    priority: 0,
};
const AGE: ColumnDefinition = ColumnDefinition::string("Age", CREATED_DOC);
const CONTAINERS: ColumnDefinition = ColumnDefinition::string("Containers", CONTAINERS_DOC).wide();
const IMAGES: ColumnDefinition = ColumnDefinition::string("Images", IMAGES_DOC).wide();

pub(crate) const POD: &[ColumnDefinition] = &[
    NAME,
    ColumnDefinition::string("Ready", "The aggregate readiness state of this pod for accepting traffic."),
    ColumnDefinition::string("Status", "The aggregate status of the containers in this pod."),
    ColumnDefinition::string(
        "Restarts",
        "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
    ),
    AGE,
    ColumnDefinition::string(
        "IP",
        "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.",
    )
    .wide(),
    ColumnDefinition::string(
        "Node",
        "NodeName indicates in which node this pod is scheduled. If empty, this pod is a candidate for scheduling by the scheduler defined in schedulerName. Once this field is set, the kubelet for this node becomes responsible for the lifecycle of this pod. This field should not be used to express a desire for the pod to be scheduled on a specific node. https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/#nodename",
    )
    .wide(),
    ColumnDefinition::string(
        "Nominated Node",
        "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods. This field does not guarantee that the pod will be scheduled on this node. Scheduler may decide to place the pod elsewhere if other nodes become available sooner. Scheduler may also decide to give the resources on this node to a higher priority pod that is created after preemption. As a result, this field may be different than PodSpec.nodeName when the pod is scheduled.",
    )
    .wide(),
    ColumnDefinition::string(
        "Readiness Gates",
        "If specified, all readiness gates will be evaluated for pod readiness. A pod is ready when all its containers are ready AND all conditions specified in the readiness gates have status equal to \"True\" More info: https://git.k8s.io/enhancements/keps/sig-network/580-pod-readiness-gates",
    )
    .wide(),
];

pub(crate) const DEPLOYMENT: &[ColumnDefinition] = &[
    NAME,
    ColumnDefinition::string("Ready", "Number of the pod with ready state"),
    ColumnDefinition::string(
        "Up-to-date",
        "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
    ),
    ColumnDefinition::string(
        "Available",
        "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    ColumnDefinition::string(
        "Selector",
        "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.",
    )
    .wide(),
];

pub(crate) const REPLICA_SET: &[ColumnDefinition] = &[
    NAME,
    ColumnDefinition::integer(
        "Desired",
        "Replicas is the number of desired replicas. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller/#what-is-a-replicationcontroller",
    ),
    ColumnDefinition::integer(
        "Current",
        "Replicas is the most recently observed number of replicas. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller/#what-is-a-replicationcontroller",
    ),
    ColumnDefinition::integer("Ready", "The number of ready replicas for this replica set."),
    AGE,
    CONTAINERS,
    IMAGES,
    ColumnDefinition::string(
        "Selector",
        "Selector is a label query over pods that should match the replica count. If the selector is empty, it is defaulted to the labels present on the pod template. Label keys and values that must match in order to be controlled by this replica set. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors",
    )
    .wide(),
];

pub(crate) const SERVICE: &[ColumnDefinition] = &[
    NAME,
    ColumnDefinition::string(
        "Type",
        "type determines how the Service is exposed. Defaults to ClusterIP. Valid options are ExternalName, ClusterIP, NodePort, and LoadBalancer. \"ClusterIP\" allocates a cluster-internal IP address for load-balancing to endpoints. Endpoints are determined by the selector or if that is not specified, by manual construction of an Endpoints object or EndpointSlice objects. If clusterIP is \"None\", no virtual IP is allocated and the endpoints are published as a set of endpoints rather than a virtual IP. \"NodePort\" builds on ClusterIP and allocates a port on every node which routes to the same endpoints as the clusterIP. \"LoadBalancer\" builds on NodePort and creates an external load-balancer (if supported in the current cloud) which routes to the same endpoints as the clusterIP. \"ExternalName\" aliases this service to the specified externalName. Several other fields do not apply to ExternalName services. More info: https://kubernetes.io/docs/concepts/services-networking/service/#publishing-services-service-types",
    ),
    ColumnDefinition::string(
        "Cluster-IP",
        "clusterIP is the IP address of the service and is usually assigned randomly. If an address is specified manually, is in-range (as per system configuration), and is not in use, it will be allocated to the service; otherwise creation of the service will fail. This field may not be changed through updates unless the type field is also being changed to ExternalName (which requires this field to be blank) or the type field is being changed from ExternalName (in which case this field may optionally be specified, as describe above).  Valid values are \"None\", empty string (\"\"), or a valid IP address. Setting this to \"None\" makes a \"headless service\" (no virtual IP), which is useful when direct endpoint connections are preferred and proxying is not required.  Only applies to types ClusterIP, NodePort, and LoadBalancer. If this field is specified when creating a Service of type ExternalName, creation will fail. This field will be wiped when updating a Service to type ExternalName. More info: https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies",
    ),
    ColumnDefinition::string(
        "External-IP",
        "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.  These IPs are not managed by Kubernetes.  The user is responsible for ensuring that traffic arrives at a node with this IP.  A common example is external load-balancers that are not part of the Kubernetes system.",
    ),
    ColumnDefinition::string(
        "Port(s)",
        "The list of ports that are exposed by this service. More info: https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies",
    ),
    AGE,
    ColumnDefinition::string(
        "Selector",
        "Route service traffic to pods with label keys and values matching this selector. If empty or not present, the service is assumed to have an external process managing its endpoints, which Kubernetes will not modify. Only applies to types ClusterIP, NodePort, and LoadBalancer. Ignored if type is ExternalName. More info: https://kubernetes.io/docs/concepts/services-networking/service/",
    )
    .wide(),
];

pub(crate) const ENDPOINTS: &[ColumnDefinition] = &[
    NAME,
    ColumnDefinition::string(
        "Endpoints",
        "The set of all endpoints is the union of all subsets. Addresses are placed into subsets according to the IPs they share. A single address with multiple ports, some of which are ready and some of which are not (because they come from different containers) will result in the address being displayed in different subsets for the different ports. No address will appear in both Addresses and NotReadyAddresses in the same subset. Sets of addresses and ports that comprise a service.",
    ),
    AGE,
];

pub(crate) const NAMESPACE: &[ColumnDefinition] = &[
    NAME,
    ColumnDefinition::string("Status", "The status of the namespace"),
    AGE,
];

const NODE_ADDRESSES_DOC: &str = "List of addresses reachable to the node. Queried from cloud provider, if available. More info: https://kubernetes.io/docs/reference/node/node-status/#addresses Note: This field is declared as mergeable, but the merge key is not sufficiently unique, which can cause data corruption when it is merged. Callers should instead use a full-replacement patch. See https://pr.k8s.io/79391 for an example. Consumers should assume that addresses can change during the lifetime of a Node. However, there are some exceptions where this may not be possible, such as Pods that inherit a Node's address in its own status or consumers of the downward API (status.hostIP).";

pub(crate) const NODE: &[ColumnDefinition] = &[
    NAME,
    ColumnDefinition::string("Status", "The status of the node"),
    ColumnDefinition::string("Roles", "The roles of the node"),
    AGE,
    ColumnDefinition::string("Version", "Kubelet Version reported by the node."),
    ColumnDefinition::string("Internal-IP", NODE_ADDRESSES_DOC).wide(),
    ColumnDefinition::string("External-IP", NODE_ADDRESSES_DOC).wide(),
    ColumnDefinition::string(
        "OS-Image",
        "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).",
    )
    .wide(),
    ColumnDefinition::string(
        "Kernel-Version",
        "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).",
    )
    .wide(),
    ColumnDefinition::string(
        "Container-Runtime",
        "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).",
    )
    .wide(),
];

pub(crate) const EVENT: &[ColumnDefinition] = &[
    ColumnDefinition::string(
        "Last Seen",
        "The time at which the most recent occurrence of this event was recorded.",
    ),
    ColumnDefinition::string(
        "Type",
        "Type of this event (Normal, Warning), new types could be added in the future",
    ),
    ColumnDefinition::string(
        "Reason",
        "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.",
    ),
    ColumnDefinition::string("Object", "The object that this event is about."),
    ColumnDefinition::string(
        "Subobject",
        "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2]. For example, if the object reference is to a container within a pod, this would take on a value like: \"spec.containers{name}\" (where \"name\" refers to the name of the container that triggered the event) or if no container name is specified \"spec.containers[2]\" (container with index 2 in this pod). This syntax is chosen only to have some well-defined way of referencing a part of an object.",
    )
    .wide(),
    ColumnDefinition::string(
        "Source",
        "The component reporting this event. Should be a short machine understandable string.",
    )
    .wide(),
    ColumnDefinition::string(
        "Message",
        "A human-readable description of the status of this operation.",
    ),
    ColumnDefinition::string(
        "First Seen",
        "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)",
    )
    .wide(),
    ColumnDefinition::string("Count", "The number of times this event has occurred.").wide(),
    NAME.wide(),
];

pub(crate) const CONFIG_MAP: &[ColumnDefinition] = &[
    NAME,
    ColumnDefinition::string(
        "Data",
        "Data contains the configuration data. Each key must consist of alphanumeric characters, '-', '_' or '.'. Values with non-UTF-8 byte sequences must use the BinaryData field. The keys stored in Data must not overlap with the keys in the BinaryData field, this is enforced during validation process.",
    ),
    AGE,
];

pub(crate) const SECRET: &[ColumnDefinition] = &[
    NAME,
    ColumnDefinition::string(
        "Type",
        "Used to facilitate programmatic handling of secret data. More info: https://kubernetes.io/docs/concepts/configuration/secret/#secret-types",
    ),
    ColumnDefinition::string(
        "Data",
        "Data contains the secret data. Each key must consist of alphanumeric characters, '-', '_' or '.'. The serialized form of the secret data is a base64 encoded string, representing the arbitrary (possibly non-string) data value here. Described in https://tools.ietf.org/html/rfc4648#section-4",
    ),
    AGE,
];

pub(crate) const SERVICE_ACCOUNT: &[ColumnDefinition] = &[
    NAME,
    ColumnDefinition::string(
        "Secrets",
        "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use. Pods are only limited to this list if this service account has a \"kubernetes.io/enforce-mountable-secrets\" annotation set to \"true\". The \"kubernetes.io/enforce-mountable-secrets\" annotation is deprecated since v1.32. Prefer separate namespaces to isolate access to mounted secrets. This field should not be used to find auto-generated service account token secrets for use outside of pods. Instead, tokens can be requested directly using the TokenRequest API, or service account token secrets can be manually created. More info: https://kubernetes.io/docs/concepts/configuration/secret",
    ),
    AGE,
];

pub(crate) const RESOURCE_QUOTA: &[ColumnDefinition] = &[
    NAME,
    AGE,
    ColumnDefinition::string(
        "Request",
        "Request represents a minimum amount of cpu/memory that a container may consume.",
    ),
    ColumnDefinition::string(
        "Limit",
        "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node.",
    ),
];

pub(crate) const LEASE: &[ColumnDefinition] = &[
    NAME,
    ColumnDefinition::string(
        "Holder",
        "holderIdentity contains the identity of the holder of a current lease. If Coordinated Leader Election is used, the holder identity must be equal to the elected LeaseCandidate.metadata.name field.",
    ),
    AGE,
];

pub(crate) const INGRESS: &[ColumnDefinition] = &[
    NAME,
    ColumnDefinition::string(
        "Class",
        "The name of the IngressClass resource that should be used for additional configuration",
    ),
    ColumnDefinition::string(
        "Hosts",
        "Hosts that incoming requests are matched against before the ingress rule",
    ),
    ColumnDefinition::string(
        "Address",
        "Address is a list containing ingress points for the load-balancer",
    ),
    ColumnDefinition::string("Ports", "Ports of TLS configurations that open"),
    AGE,
];

pub(crate) const ROLE_BINDING: &[ColumnDefinition] = &[
    NAME,
    ColumnDefinition::string(
        "Role",
        "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace. If the RoleRef cannot be resolved, the Authorizer must return an error.",
    ),
    AGE,
    ColumnDefinition::string("Users", "Users in the roleBinding").wide(),
    ColumnDefinition::string("Groups", "Groups in the roleBinding").wide(),
    ColumnDefinition::string("ServiceAccounts", "ServiceAccounts in the roleBinding").wide(),
];

pub(crate) const CLUSTER_ROLE_BINDING: &[ColumnDefinition] = &[
    NAME,
    ColumnDefinition::string(
        "Role",
        "RoleRef can only reference a ClusterRole in the global namespace. If the RoleRef cannot be resolved, the Authorizer must return an error.",
    ),
    AGE,
    ColumnDefinition::string("Users", "Users in the clusterRoleBinding").wide(),
    ColumnDefinition::string("Groups", "Groups in the clusterRoleBinding").wide(),
    ColumnDefinition::string(
        "ServiceAccounts",
        "ServiceAccounts in the clusterRoleBinding",
    )
    .wide(),
];

/// The apiserver's `DefaultTableConvertor`, used for every kind without a printer
/// (Role, ClusterRole, LimitRange, custom resources): the creation time as a date.
pub(crate) const DEFAULT: &[ColumnDefinition] = &[
    NAME,
    ColumnDefinition {
        name: "Created At",
        column_type: "date",
        format: "",
        description: CREATED_DOC,
        priority: 0,
    },
];
