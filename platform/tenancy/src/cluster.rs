//! What a squad is in the cluster: its namespaces, each with a ResourceQuota, a LimitRange
//! and a RoleBinding, written by server-side apply so that applying again converges.

use std::collections::BTreeMap;
use std::fmt::Debug;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, LimitRange, Namespace, Pod, ResourceQuota, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use serde_json::json;
use slipway_platform_db::{Hard, Limits, Squad};

/// The field manager of everything the platform applies.
pub const FIELD_MANAGER: &str = "slipway-platform";
/// The label naming the squad a namespace belongs to.
pub const SQUAD_LABEL: &str = "slipway.dev/squad";
/// The ResourceQuota in each squad namespace.
pub const QUOTA_NAME: &str = "squad-quota";
/// The LimitRange in each squad namespace.
pub const LIMITS_NAME: &str = "squad-defaults";
/// The RoleBinding in each squad namespace.
pub const ROLE_BINDING_NAME: &str = "squad-edit";

fn apply() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(status) if status.code == 404)
}

/// The squad a namespace is labelled for, if the namespace exists: `Some(None)` for an
/// existing namespace of no squad.
pub(crate) async fn namespace_owner(
    client: &Client,
    namespace: &str,
) -> kube::Result<Option<Option<String>>> {
    let found = Api::<Namespace>::all(client.clone())
        .get_opt(namespace)
        .await?;
    Ok(found.map(|ns| {
        ns.metadata
            .labels
            .and_then(|mut labels| labels.remove(SQUAD_LABEL))
    }))
}

/// Applies the namespace and its three objects; idempotent.
pub(crate) async fn apply_namespace(
    client: &Client,
    squad: &Squad,
    namespace: &str,
) -> kube::Result<()> {
    apply_tenant_namespace(
        client,
        &squad.name,
        namespace,
        &BTreeMap::new(),
        &squad.quota.hard,
        &squad.limits,
    )
    .await
}

/// Applies a namespace of `squad` labelled with `labels` besides the squad's, with its
/// ResourceQuota `hard`, its LimitRange `limits` and the RoleBinding that lets the squad
/// edit in it; idempotent. Squad namespaces and preview namespaces are both made so.
pub async fn apply_tenant_namespace(
    client: &Client,
    squad: &str,
    namespace: &str,
    labels: &BTreeMap<String, String>,
    hard: &Hard,
    limits: &Limits,
) -> kube::Result<()> {
    let mut labels = labels.clone();
    labels.insert(SQUAD_LABEL.to_owned(), squad.to_owned());
    Api::<Namespace>::all(client.clone())
        .patch(
            namespace,
            &apply(),
            &Patch::Apply(json!({
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": { "name": namespace, "labels": labels },
            })),
        )
        .await?;
    apply_hard(client, namespace, hard).await?;
    Api::<LimitRange>::namespaced(client.clone(), namespace)
        .patch(
            LIMITS_NAME,
            &apply(),
            &Patch::Apply(json!({
                "apiVersion": "v1",
                "kind": "LimitRange",
                "metadata": { "name": LIMITS_NAME, "namespace": namespace },
                "spec": { "limits": [{
                    "type": "Container",
                    "default": limits.default,
                    "defaultRequest": limits.default_request,
                }]},
            })),
        )
        .await?;
    Api::<RoleBinding>::namespaced(client.clone(), namespace)
        .patch(
            ROLE_BINDING_NAME,
            &apply(),
            &Patch::Apply(json!({
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": { "name": ROLE_BINDING_NAME, "namespace": namespace },
                "subjects": [{
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Group",
                    "name": crate::squad_group(squad),
                }],
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "edit",
                },
            })),
        )
        .await?;
    Ok(())
}

/// Applies the squad's quota to one namespace.
pub(crate) async fn apply_quota(
    client: &Client,
    squad: &Squad,
    namespace: &str,
) -> kube::Result<()> {
    apply_hard(client, namespace, &squad.quota.hard).await
}

async fn apply_hard(client: &Client, namespace: &str, hard: &Hard) -> kube::Result<()> {
    Api::<ResourceQuota>::namespaced(client.clone(), namespace)
        .patch(
            QUOTA_NAME,
            &apply(),
            &Patch::Apply(json!({
                "apiVersion": "v1",
                "kind": "ResourceQuota",
                "metadata": { "name": QUOTA_NAME, "namespace": namespace },
                "spec": { "hard": hard },
            })),
        )
        .await?;
    Ok(())
}

async fn names<K>(client: &Client, namespace: &str) -> kube::Result<Vec<String>>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + Debug
        + DeserializeOwned,
{
    let list = Api::<K>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await?;
    let plural = K::plural(&());
    Ok(list
        .items
        .iter()
        .filter_map(|o| o.meta().name.clone())
        // Kubernetes puts this one in every namespace; it is not the squad's work.
        .filter(|n| !(plural == "configmaps" && n == "kube-root-ca.crt"))
        .map(|n| format!("{plural}/{n}"))
        .collect())
}

/// What a namespace holds of the kinds a squad works with (the kinds the API serves that
/// users create), as `plural/name`. Secrets are not looked at: listing them reads them, and
/// the platform's role may not; a namespace holding only Secrets counts as empty.
pub(crate) async fn contents(client: &Client, namespace: &str) -> kube::Result<Vec<String>> {
    let mut found = Vec::new();
    found.extend(names::<Pod>(client, namespace).await?);
    found.extend(names::<Deployment>(client, namespace).await?);
    found.extend(names::<ReplicaSet>(client, namespace).await?);
    found.extend(names::<Service>(client, namespace).await?);
    found.extend(names::<ConfigMap>(client, namespace).await?);
    found.extend(names::<Ingress>(client, namespace).await?);
    Ok(found)
}

/// Deletes a namespace if it is still labelled for `squad`; one that is gone is fine, and
/// one of another squad or none is left alone.
pub async fn delete_tenant_namespace(
    client: &Client,
    squad: &str,
    namespace: &str,
) -> kube::Result<()> {
    if namespace_owner(client, namespace)
        .await?
        .flatten()
        .as_deref()
        != Some(squad)
    {
        return Ok(());
    }
    match Api::<Namespace>::all(client.clone())
        .delete(namespace, &DeleteParams::default())
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e),
    }
}
