//! How a controller claims the objects it manages, as Kubernetes' controller ref manager
//! does: it keeps what it controls and still selects, adopts matching orphans, releases
//! what stopped matching, and learns which owners an object's change concerns.

use std::fmt::Debug;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;
use slipway_model::labels::Selector;

use crate::reconciler::{Error, settled};

/// The owner reference with `controller: true`, if any.
pub fn controller_of<K: Resource>(object: &K) -> Option<&OwnerReference> {
    object
        .meta()
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
}

/// Whether `selector` is usable and picks `object`; an empty selector picks nothing here,
/// as a controller must never claim everything.
pub fn selects<K: Resource>(selector: &LabelSelector, object: &K) -> bool {
    Selector::try_from(selector).is_ok_and(|s| !s.is_empty() && s.matches(object.labels()))
}

/// The owners of kind `O` an object's change concerns: its controller if one of that kind
/// controls it, else every owner in its namespace whose selector picks it (a candidate for
/// adoption).
pub fn interested<O, K>(
    owners: &[Arc<O>],
    object: &K,
    selector_of: impl Fn(&O) -> Option<&LabelSelector>,
) -> Vec<ObjectRef<O>>
where
    O: Resource<DynamicType = ()>,
    K: Resource,
{
    let namespace = object.namespace();
    if let Some(owner) = controller_of(object) {
        return if owner.kind == O::kind(&()) {
            vec![ObjectRef::new(&owner.name).within(namespace.as_deref().unwrap_or_default())]
        } else {
            Vec::new()
        };
    }
    owners
        .iter()
        .filter(|owner| owner.namespace() == namespace)
        .filter(|owner| selector_of(owner).is_some_and(|s| selects(s, object)))
        .map(|owner| ObjectRef::from_obj(owner.as_ref()))
        .collect()
}

/// Sorts `objects` into those `owner` keeps: controlled and still selected ones, plus
/// selected orphans it adopts (unless it is being deleted); controlled ones that stopped
/// matching are released.
///
/// # Errors
///
/// When an adoption or release fails for another reason than a lost race.
pub async fn claim<K>(
    api: &Api<K>,
    objects: Vec<K>,
    owner: &OwnerReference,
    selector: &LabelSelector,
    owner_deleting: bool,
) -> Result<Vec<K>, Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let mut kept = Vec::new();
    for object in objects {
        let matches = selects(selector, &object);
        match controller_of(&object).map(|o| o.uid.as_str()) {
            Some(uid) if uid == owner.uid => {
                if matches {
                    kept.push(object);
                } else {
                    let others = owners(&object).filter(|o| o.uid != owner.uid).collect();
                    patch_owners(api, &object, others).await?;
                }
            }
            None if matches && !owner_deleting && object.meta().deletion_timestamp.is_none() => {
                let mut all: Vec<OwnerReference> = owners(&object).collect();
                all.push(owner.clone());
                if patch_owners(api, &object, all).await? {
                    kept.push(object);
                }
            }
            _ => {}
        }
    }
    Ok(kept)
}

fn owners<K: Resource>(object: &K) -> impl Iterator<Item = OwnerReference> + '_ {
    object.meta().owner_references.iter().flatten().cloned()
}

/// Writes an object's owner references if it is unchanged since read; `false` when it
/// changed or went meanwhile.
async fn patch_owners<K>(
    api: &Api<K>,
    object: &K,
    owners: Vec<OwnerReference>,
) -> Result<bool, Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let patch = json!({"metadata": {
        "resourceVersion": object.resource_version(),
        "ownerReferences": if owners.is_empty() { json!(null) } else { json!(owners) },
    }});
    let landed = settled(
        api.patch(
            &object.name_any(),
            &PatchParams::default(),
            &Patch::Merge(patch),
        )
        .await,
    )?;
    Ok(landed.is_some())
}
