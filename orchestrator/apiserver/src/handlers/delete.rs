//! Delete and deletecollection: finalizers (the garbage collector's among them, from the
//! propagation policy) and graceful pod deletion mark the object, everything else removes it.

use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use super::{Ctx, Query, json_response, with_type};
use crate::objects::{self, decode, encode, finalizers, is_terminating, meta_str, metadata_mut};
use crate::path::Target;
use crate::resources::ResourceType;
use crate::status::{ApiError, ApiResult};

impl Ctx {
    pub(super) async fn delete(&self, body: Bytes) -> ApiResult<Response> {
        let resource = self.resource();
        let name = self.name();
        let options = &DeleteOptions::read(&self.query, &body)?;
        let key = &self.key(name);
        self.until_landed(|| async move {
            // Its lease (an Event's time to live) carries over to what replaces it.
            let stored = self.get_kv().await?;
            let current = decode(&stored)?;
            options.check_preconditions(resource, name, &current)?;
            let revision = objects::resource_version(&current)?.unwrap_or_default();
            match options.plan(resource, &current, self.state.clock.now())? {
                Plan::Keep => Ok(Some(json_response(
                    StatusCode::OK,
                    &with_type(resource, current),
                ))),
                Plan::Mark(mut marked) => {
                    if options.dry_run {
                        return Ok(Some(json_response(
                            StatusCode::OK,
                            &with_type(resource, marked),
                        )));
                    }
                    let written = self.landed(
                        self.state
                            .store
                            .update(key, encode(&marked).into(), revision, stored.lease)
                            .await,
                    )?;
                    Ok(written.map(|kv| {
                        objects::set_resource_version(&mut marked, kv.mod_revision);
                        json_response(StatusCode::OK, &with_type(resource, marked))
                    }))
                }
                Plan::Remove => {
                    if options.dry_run {
                        return Ok(Some(deleted_response(resource, name, current)));
                    }
                    let Some(deleted) =
                        self.landed(self.state.store.delete(key, Some(revision)).await)?
                    else {
                        return Ok(None);
                    };
                    self.release_allocations(&current).await;
                    let mut last = current;
                    objects::set_resource_version(&mut last, deleted.revision);
                    Ok(Some(deleted_response(resource, name, last)))
                }
            }
        })
        .await
    }

    /// DELETE on a collection: deletes every selected object, one by one.
    pub(super) async fn delete_collection(&self) -> ApiResult<Response> {
        let resource = self.resource();
        if !resource.allows("deletecollection") {
            return Err(ApiError::method_not_allowed(format!(
                "deletecollection is not supported on {}",
                resource.qualified_name()
            )));
        }
        let list = self.list().await?;
        let mut deleted = Vec::new();
        for item in list["items"].as_array().into_iter().flatten() {
            let Some(name) = meta_str(item, "name") else {
                continue;
            };
            let namespace = meta_str(item, "namespace").map(str::to_owned);
            let one = Ctx {
                state: self.state.clone(),
                target: Target {
                    resource,
                    namespace,
                    name: Some(name.to_owned()),
                    subresource: None,
                },
                query: self.query.clone(),
                headers: self.headers.clone(),
                user: self.user.clone(),
            };
            match one.delete(Bytes::new()).await {
                Ok(_) => deleted.push(item.clone()),
                Err(e) if e.code() == StatusCode::NOT_FOUND => {}
                Err(e) => return Err(e),
            }
        }
        Ok(json_response(
            StatusCode::OK,
            &json!({
                "kind": format!("{}List", resource.kind),
                "apiVersion": resource.api_version(),
                "metadata": {},
                "items": deleted,
            }),
        ))
    }
}

/// Options of a delete, from its body or query.
struct DeleteOptions {
    grace_period: Option<i64>,
    propagation: Option<Propagation>,
    uid: Option<String>,
    resource_version: Option<String>,
    dry_run: bool,
}

/// What happens to an object's dependents when it is deleted; the garbage collector acts
/// on the finalizer each policy leaves on the owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Propagation {
    /// Dependents are deleted after the owner is gone (no finalizer).
    Background,
    /// Dependents are deleted first; `foregroundDeletion` holds the owner until then.
    Foreground,
    /// Dependents lose their owner reference; `orphan` holds the owner until then.
    Orphan,
}

/// What a delete does to the object it read.
#[derive(Debug, PartialEq)]
enum Plan {
    /// Nothing: a deletion is already pending and these options do not change it.
    Keep,
    /// Write the object marked for deletion; finalizers or a node finish it.
    Mark(Value),
    /// Remove it now.
    Remove,
}

impl DeleteOptions {
    fn read(query: &Query, body: &[u8]) -> ApiResult<DeleteOptions> {
        let body: Value = if body.iter().all(u8::is_ascii_whitespace) {
            json!({})
        } else {
            serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?
        };
        let grace_period = match (
            body["gracePeriodSeconds"].as_i64(),
            query.get("gracePeriodSeconds"),
        ) {
            (Some(g), _) => Some(g),
            (None, Some(g)) => Some(g.parse().map_err(|_| {
                ApiError::bad_request(format!("invalid gracePeriodSeconds: {g:?}"))
            })?),
            (None, None) => None,
        };
        let policy = body["propagationPolicy"]
            .as_str()
            .map(str::to_owned)
            .or_else(|| query.get("propagationPolicy").cloned());
        let orphan_dependents = body["orphanDependents"]
            .as_bool()
            .or_else(|| query.get("orphanDependents").map(|v| super::is_true(v)));
        let propagation = match (policy.as_deref(), orphan_dependents) {
            (Some(_), Some(_)) => {
                return Err(ApiError::unprocessable(
                    "DeleteOptions.propagationPolicy: Invalid value: \"orphanDependents\": orphanDependents and deletionPropagation cannot be both set",
                ));
            }
            (Some("Background"), None) => Some(Propagation::Background),
            (Some("Foreground"), None) => Some(Propagation::Foreground),
            (Some("Orphan"), None) => Some(Propagation::Orphan),
            (Some(other), None) => {
                return Err(ApiError::unprocessable(format!(
                    "DeleteOptions.propagationPolicy: Unsupported value: {other:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""
                )));
            }
            (None, Some(true)) => Some(Propagation::Orphan),
            (None, Some(false)) => Some(Propagation::Background),
            (None, None) => None,
        };
        let dry_run = match (body["dryRun"].as_array(), query.get("dryRun")) {
            (Some(list), _) => list.iter().any(|v| v == "All"),
            (None, Some(v)) => v == "All",
            (None, None) => false,
        };
        Ok(DeleteOptions {
            grace_period,
            propagation,
            uid: body["preconditions"]["uid"].as_str().map(str::to_owned),
            resource_version: body["preconditions"]["resourceVersion"]
                .as_str()
                .map(str::to_owned),
            dry_run,
        })
    }

    fn check_preconditions(
        &self,
        resource: &ResourceType,
        name: &str,
        current: &Value,
    ) -> ApiResult<()> {
        if let Some(uid) = &self.uid
            && meta_str(current, "uid") != Some(uid.as_str())
        {
            return Err(ApiError::conflict(resource, name).with_message(format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                meta_str(current, "uid").unwrap_or_default()
            )));
        }
        if let Some(rv) = &self.resource_version
            && meta_str(current, "resourceVersion") != Some(rv.as_str())
        {
            return Err(ApiError::conflict(resource, name).with_message(format!(
                "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                meta_str(current, "resourceVersion").unwrap_or_default()
            )));
        }
        Ok(())
    }

    /// What deleting `current` comes to, as Kubernetes' `BeforeDelete` and the registry
    /// decide it: a pod on a node is marked for its grace period (only ever shortened
    /// afterwards); an object with finalizers, including the garbage collector's `orphan`
    /// and `foregroundDeletion` that the propagation policy asks for, is marked; a
    /// namespace is always marked, for its own finalizer; anything else is removed now.
    fn plan(&self, resource: &ResourceType, current: &Value, now: SystemTime) -> ApiResult<Plan> {
        let mut marked = current.clone();
        metadata_mut(&mut marked).remove("resourceVersion");
        if is_terminating(current) {
            if resource.kind == "Namespace" {
                return Ok(Plan::Keep);
            }
            let held = current["metadata"]["deletionGracePeriodSeconds"]
                .as_i64()
                .unwrap_or(0);
            if held > 0 {
                // A pending graceful deletion may only be shortened; its finalizers cannot
                // change through delete options meanwhile.
                let Some(shorter) = self.grace_period.map(|g| g.max(0)).filter(|g| *g < held)
                else {
                    return Ok(Plan::Keep);
                };
                if shorter == 0 && finalizers(current).is_empty() {
                    return Ok(Plan::Remove);
                }
                let since = meta_str(current, "deletionTimestamp")
                    .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                    .map_or(now, SystemTime::from);
                let meta = metadata_mut(&mut marked);
                meta.insert(
                    "deletionTimestamp".into(),
                    json!(objects::timestamp(
                        since - Duration::from_secs(held.unsigned_abs())
                            + Duration::from_secs(shorter.unsigned_abs())
                    )),
                );
                meta.insert("deletionGracePeriodSeconds".into(), json!(shorter));
                return Ok(Plan::Mark(marked));
            }
            let wanted = self.finalizers_for(current);
            if wanted.is_empty() {
                return Ok(Plan::Remove);
            }
            if wanted == finalizers(current) {
                return Ok(Plan::Keep);
            }
            set_finalizers(&mut marked, wanted);
            return Ok(Plan::Mark(marked));
        }
        let wanted = self.finalizers_for(current);
        let grace = self.grace_for(resource, current);
        if grace == 0 && wanted.is_empty() && resource.kind != "Namespace" {
            return Ok(Plan::Remove);
        }
        set_finalizers(&mut marked, wanted);
        let meta = metadata_mut(&mut marked);
        meta.insert(
            "deletionTimestamp".into(),
            json!(objects::timestamp(
                now + Duration::from_secs(grace.unsigned_abs())
            )),
        );
        meta.insert("deletionGracePeriodSeconds".into(), json!(grace));
        if let Some(generation) = meta.get("generation").and_then(Value::as_i64) {
            meta.insert("generation".into(), json!(generation + 1));
        }
        if resource.kind == "Namespace" {
            marked["status"]["phase"] = json!("Terminating");
        }
        Ok(Plan::Mark(marked))
    }

    /// The object's finalizers once the propagation policy is applied.
    fn finalizers_for(&self, current: &Value) -> Vec<String> {
        let mut list = finalizers(current);
        let (add, remove): (&[&str], &[&str]) = match self.propagation {
            None => (&[], &[]),
            Some(Propagation::Background) => (&[], &[ORPHAN, FOREGROUND]),
            Some(Propagation::Foreground) => (&[FOREGROUND], &[ORPHAN]),
            Some(Propagation::Orphan) => (&[ORPHAN], &[FOREGROUND]),
        };
        list.retain(|f| !remove.contains(&f.as_str()));
        for f in add {
            if !list.iter().any(|have| have == f) {
                list.push((*f).to_owned());
            }
        }
        list
    }

    /// A pod's grace period, as the pod strategy's `CheckGracefulDelete` computes it: the
    /// request's, else the pod's own, and none for a pod no node runs or that has finished.
    /// Other kinds are deleted without one.
    fn grace_for(&self, resource: &ResourceType, current: &Value) -> i64 {
        if resource.kind != "Pod" {
            return 0;
        }
        let scheduled = current["spec"]["nodeName"]
            .as_str()
            .is_some_and(|n| !n.is_empty());
        let finished = matches!(
            current["status"]["phase"].as_str(),
            Some("Succeeded" | "Failed")
        );
        if !scheduled || finished {
            return 0;
        }
        self.grace_period
            .or_else(|| current["spec"]["terminationGracePeriodSeconds"].as_i64())
            .unwrap_or(0)
            .max(0)
    }
}

/// The garbage collector's finalizers (k8s.io/apimachinery `metav1.FinalizerOrphanDependents`
/// and `FinalizerDeleteDependents`).
const ORPHAN: &str = "orphan";
const FOREGROUND: &str = "foregroundDeletion";

fn set_finalizers(object: &mut Value, list: Vec<String>) {
    let meta = metadata_mut(object);
    if list.is_empty() {
        meta.remove("finalizers");
    } else {
        meta.insert("finalizers".into(), json!(list));
    }
}

/// Kinds whose completed delete answers with the deleted object, as upstream's stores with
/// `ReturnDeletedObject` do; the others answer with a `Status`.
const RETURN_DELETED_OBJECT: &[&str] = &["Pod", "Service", "ResourceQuota", "ServiceAccount"];

/// What a completed delete answers.
fn deleted_response(resource: &ResourceType, name: &str, last: Value) -> Response {
    if RETURN_DELETED_OBJECT.contains(&resource.kind) {
        return json_response(StatusCode::OK, &with_type(resource, last));
    }
    let mut details = json!({ "name": name, "kind": resource.plural });
    if !resource.group.is_empty() {
        details["group"] = json!(resource.group);
    }
    if let Some(uid) = meta_str(&last, "uid") {
        details["uid"] = json!(uid);
    }
    json_response(
        StatusCode::OK,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::find;

    fn options(query: &[(&str, &str)]) -> DeleteOptions {
        let query: Query = query
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        DeleteOptions::read(&query, b"").unwrap()
    }

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + seconds)
    }

    fn pod(node: &str, phase: &str) -> Value {
        json!({"kind": "Pod", "metadata": {"name": "p", "resourceVersion": "3"},
               "spec": {"nodeName": node, "terminationGracePeriodSeconds": 30},
               "status": {"phase": phase}})
    }

    fn marked(plan: Plan) -> Value {
        match plan {
            Plan::Mark(object) => object,
            other => panic!("expected a mark, got {other:?}"),
        }
    }

    #[test]
    fn pods_on_a_node_wait_their_grace_period_which_only_shortens() {
        let pods = find("", "v1", "pods").unwrap();
        let first = marked(
            options(&[])
                .plan(pods, &pod("n1", "Running"), at(0))
                .unwrap(),
        );
        assert_eq!(
            first["metadata"]["deletionTimestamp"],
            objects::timestamp(at(30))
        );
        assert_eq!(first["metadata"]["deletionGracePeriodSeconds"], 30);
        assert!(first["metadata"].get("resourceVersion").is_none());

        let longer = options(&[("gracePeriodSeconds", "60")]);
        assert_eq!(longer.plan(pods, &first, at(1)).unwrap(), Plan::Keep);
        let shorter = marked(
            options(&[("gracePeriodSeconds", "5")])
                .plan(pods, &first, at(1))
                .unwrap(),
        );
        assert_eq!(
            shorter["metadata"]["deletionTimestamp"],
            objects::timestamp(at(5))
        );
        assert_eq!(shorter["metadata"]["deletionGracePeriodSeconds"], 5);
        let force = options(&[("gracePeriodSeconds", "0")]);
        assert_eq!(force.plan(pods, &shorter, at(2)).unwrap(), Plan::Remove);
    }

    #[test]
    fn unscheduled_and_finished_pods_go_at_once() {
        let pods = find("", "v1", "pods").unwrap();
        let opts = options(&[("gracePeriodSeconds", "30")]);
        assert_eq!(
            opts.plan(pods, &pod("", "Pending"), at(0)).unwrap(),
            Plan::Remove
        );
        for phase in ["Succeeded", "Failed"] {
            assert_eq!(
                opts.plan(pods, &pod("n1", phase), at(0)).unwrap(),
                Plan::Remove
            );
        }
        // Held by a finalizer, an unscheduled pod is marked with no grace period.
        let mut held = pod("", "Pending");
        held["metadata"]["finalizers"] = json!(["example.com/hold"]);
        let held = marked(options(&[]).plan(pods, &held, at(0)).unwrap());
        assert_eq!(held["metadata"]["deletionGracePeriodSeconds"], 0);
        assert_eq!(
            held["metadata"]["deletionTimestamp"],
            objects::timestamp(at(0))
        );
    }

    #[test]
    fn propagation_policies_leave_the_garbage_collectors_finalizers() {
        let deployments = find("apps", "v1", "deployments").unwrap();
        let deploy = json!({"kind": "Deployment", "metadata": {"name": "d", "generation": 2, "finalizers": ["keep"]}});
        let orphan = marked(
            options(&[("propagationPolicy", "Orphan")])
                .plan(deployments, &deploy, at(0))
                .unwrap(),
        );
        assert_eq!(orphan["metadata"]["finalizers"], json!(["keep", "orphan"]));
        assert_eq!(orphan["metadata"]["generation"], 3);
        let foreground = marked(
            options(&[("propagationPolicy", "Foreground")])
                .plan(deployments, &orphan, at(1))
                .unwrap(),
        );
        assert_eq!(
            foreground["metadata"]["finalizers"],
            json!(["keep", "foregroundDeletion"])
        );
        let background = options(&[("propagationPolicy", "Background")]);
        let plain = json!({"kind": "Deployment", "metadata": {"name": "d"}});
        assert_eq!(
            background.plan(deployments, &plain, at(0)).unwrap(),
            Plan::Remove
        );
        assert_eq!(
            options(&[("orphanDependents", "true")]).propagation,
            Some(Propagation::Orphan)
        );
        let query: Query = [
            ("propagationPolicy", "Orphan"),
            ("orphanDependents", "false"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        assert!(DeleteOptions::read(&query, b"").is_err());
    }
}
