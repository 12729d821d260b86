//! The group-versions and resources the API server serves, described from the k8s-openapi
//! types themselves so that group, kind, plural and scope cannot drift from the objects.

use std::any::TypeId;

use k8s_openapi::api::{
    apps::v1 as apps, authentication::v1 as authn, authorization::v1 as authz,
    coordination::v1 as coordination, core::v1 as core, networking::v1 as networking,
    rbac::v1 as rbac,
};
use k8s_openapi::schemars::{JsonSchema, Schema, SchemaGenerator};
use k8s_openapi::{ListableResource, NamespaceResourceScope, Resource};

/// One group-version: one OpenAPI document.
pub(crate) struct GroupVersion {
    pub(crate) group: &'static str,
    pub(crate) version: &'static str,
    pub(crate) kinds: Vec<Kind>,
}

impl GroupVersion {
    /// The key of the document in the `/openapi/v3` index, and the tail of its URL.
    pub(crate) fn path(&self) -> String {
        if self.group.is_empty() {
            format!("api/{}", self.version)
        } else {
            format!("apis/{}/{}", self.group, self.version)
        }
    }

    /// The operation-id fragment upstream uses: `CoreV1`, `RbacAuthorizationV1`, ...
    pub(crate) fn operation_infix(&self) -> String {
        format!(
            "{}{}",
            upper_first(&self.group_camel()),
            upper_first(self.version)
        )
    }

    /// The operation tag upstream uses: `core_v1`, `rbacAuthorization_v1`, ...
    pub(crate) fn tag(&self) -> String {
        format!("{}_{}", self.group_camel(), self.version)
    }

    fn group_camel(&self) -> String {
        if self.group.is_empty() {
            return "core".to_owned();
        }
        let short = self.group.strip_suffix(".k8s.io").unwrap_or(self.group);
        let mut parts = short.split('.');
        let first = parts.next().unwrap_or_default().to_owned();
        parts.fold(first, |acc, part| acc + &upper_first(part))
    }
}

fn upper_first(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map_or_else(String::new, |c| c.to_uppercase().chain(chars).collect())
}

/// Which of the standard verbs a resource offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verbs {
    /// get, list, create, update, patch, delete and deletecollection.
    All,
    /// As `All` without deletecollection (Namespace, as upstream).
    NoDeleteCollection,
    /// Only create, on the collection path (the self-subject reviews).
    CreateOnly,
}

/// Subresources below an item path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Subresource {
    /// `/status`: get, update and patch of the parent kind.
    Status,
    /// `/scale`: get, update and patch of autoscaling/v1 Scale.
    Scale,
    /// `/log`: the text of a pod's container log.
    Log,
    /// `/binding`: create a core/v1 Binding (the scheduler's placement).
    Binding,
    /// `/finalize`: update of a Namespace's finalizers.
    Finalize,
}

impl Subresource {
    pub(crate) fn segment(self) -> &'static str {
        match self {
            Self::Status => "status",
            Self::Scale => "scale",
            Self::Log => "log",
            Self::Binding => "binding",
            Self::Finalize => "finalize",
        }
    }
}

/// A served kind, with what its paths and schemas need.
pub(crate) struct Kind {
    pub(crate) group: &'static str,
    pub(crate) version: &'static str,
    pub(crate) kind: &'static str,
    /// `None` for kinds that are only created (reviews), which have no list type.
    pub(crate) list_kind: Option<&'static str>,
    pub(crate) plural: &'static str,
    pub(crate) namespaced: bool,
    pub(crate) verbs: Verbs,
    pub(crate) subresources: &'static [Subresource],
    /// Upstream's DELETE answers with the object for a few kinds (graceful deletion) and with
    /// a Status for the rest; clients read the response as the documented type.
    pub(crate) delete_returns_object: bool,
    /// The component name, e.g. `io.k8s.api.core.v1.Pod`.
    pub(crate) schema_name: String,
    /// Registers the kind's schema (and everything it refers to) and returns its `$ref`.
    pub(crate) register: fn(&mut SchemaGenerator) -> Schema,
}

impl Kind {
    pub(crate) fn list_schema_name(&self) -> Option<String> {
        self.list_kind.map(|_| format!("{}List", self.schema_name))
    }
}

fn is_namespaced<T: Resource>() -> bool
where
    T::Scope: 'static,
{
    TypeId::of::<T::Scope>() == TypeId::of::<NamespaceResourceScope>()
}

fn kind<T: Resource + JsonSchema>(list_kind: Option<&'static str>, verbs: Verbs) -> Kind
where
    T::Scope: 'static,
{
    Kind {
        group: T::GROUP,
        version: T::VERSION,
        kind: T::KIND,
        list_kind,
        plural: T::URL_PATH_SEGMENT,
        namespaced: is_namespaced::<T>(),
        verbs,
        subresources: &[],
        delete_returns_object: false,
        schema_name: T::schema_name().into_owned(),
        register: SchemaGenerator::subschema_for::<T>,
    }
}

fn listable<T: ListableResource + JsonSchema>() -> Kind
where
    T::Scope: 'static,
{
    kind::<T>(Some(T::LIST_KIND), Verbs::All)
}

fn create_only<T: Resource + JsonSchema>() -> Kind
where
    T::Scope: 'static,
{
    kind::<T>(None, Verbs::CreateOnly)
}

impl Kind {
    fn with_subresources(mut self, subresources: &'static [Subresource]) -> Self {
        self.subresources = subresources;
        self
    }

    fn deleting_returns_object(mut self) -> Self {
        self.delete_returns_object = true;
        self
    }

    fn without_delete_collection(mut self) -> Self {
        self.verbs = Verbs::NoDeleteCollection;
        self
    }
}

/// Every group-version the API server serves, in index order.
pub(crate) fn served() -> Vec<GroupVersion> {
    use Subresource::{Binding, Finalize, Log, Scale, Status};
    let group_version = |group, version, kinds| GroupVersion {
        group,
        version,
        kinds,
    };
    vec![
        group_version(
            "",
            "v1",
            vec![
                listable::<core::Namespace>()
                    .with_subresources(&[Status, Finalize])
                    .without_delete_collection(),
                listable::<core::Pod>()
                    .with_subresources(&[Status, Log, Binding])
                    .deleting_returns_object(),
                listable::<core::Service>()
                    .with_subresources(&[Status])
                    .deleting_returns_object(),
                listable::<core::Endpoints>(),
                listable::<core::ConfigMap>(),
                listable::<core::Secret>(),
                listable::<core::ResourceQuota>()
                    .with_subresources(&[Status])
                    .deleting_returns_object(),
                listable::<core::LimitRange>(),
                listable::<core::Node>().with_subresources(&[Status]),
                listable::<core::Event>(),
                listable::<core::ServiceAccount>().deleting_returns_object(),
            ],
        ),
        group_version(
            "apps",
            "v1",
            vec![
                listable::<apps::Deployment>().with_subresources(&[Status, Scale]),
                listable::<apps::ReplicaSet>().with_subresources(&[Status, Scale]),
            ],
        ),
        group_version(
            "authentication.k8s.io",
            "v1",
            vec![create_only::<authn::SelfSubjectReview>()],
        ),
        group_version(
            "authorization.k8s.io",
            "v1",
            vec![
                create_only::<authz::SelfSubjectAccessReview>(),
                create_only::<authz::SelfSubjectRulesReview>(),
            ],
        ),
        group_version(
            "coordination.k8s.io",
            "v1",
            vec![listable::<coordination::Lease>()],
        ),
        group_version(
            "networking.k8s.io",
            "v1",
            vec![listable::<networking::Ingress>().with_subresources(&[Status])],
        ),
        group_version(
            "rbac.authorization.k8s.io",
            "v1",
            vec![
                listable::<rbac::ClusterRole>(),
                listable::<rbac::ClusterRoleBinding>(),
                listable::<rbac::Role>(),
                listable::<rbac::RoleBinding>(),
            ],
        ),
    ]
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::{Verbs, served};

    #[test]
    fn kinds_belong_to_their_group_version() {
        let served = served();
        let mut paths = BTreeSet::new();
        for gv in &served {
            assert!(paths.insert(gv.path()), "{} twice", gv.path());
            for kind in &gv.kinds {
                assert_eq!(
                    (kind.group, kind.version),
                    (gv.group, gv.version),
                    "{}",
                    kind.kind
                );
                assert_eq!(
                    kind.list_kind.is_none(),
                    kind.verbs == Verbs::CreateOnly,
                    "{}",
                    kind.kind
                );
            }
        }
    }

    #[test]
    fn names_follow_upstream() {
        let served = served();
        let names: Vec<(String, String, String)> = served
            .iter()
            .map(|gv| (gv.path(), gv.operation_infix(), gv.tag()))
            .collect();
        let expect = |path: &str, infix: &str, tag: &str| {
            assert!(
                names.contains(&(path.to_owned(), infix.to_owned(), tag.to_owned())),
                "{path}: {names:?}"
            );
        };
        expect("api/v1", "CoreV1", "core_v1");
        expect("apis/apps/v1", "AppsV1", "apps_v1");
        expect(
            "apis/coordination.k8s.io/v1",
            "CoordinationV1",
            "coordination_v1",
        );
        expect(
            "apis/rbac.authorization.k8s.io/v1",
            "RbacAuthorizationV1",
            "rbacAuthorization_v1",
        );
    }
}
