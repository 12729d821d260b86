//! ResourceQuota admission: a create (or an update that grows usage) in a namespace with
//! quotas is charged to each quota's `status.used` by compare-and-swap before the object is
//! written, so concurrent writes can never overshoot `spec.hard`; a failed write, a delete
//! and an update that shrinks usage give back what they no longer use.
//! The quota controller (issue #4) recomputes usage from scratch to repair any drift.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use slipway_model::quantity::{Format, ParsedQuantity};
use slipway_model::quota::Usage;
use slipway_store::{Error as StoreError, ListOptions, Store};

use crate::objects::{self, decode, encode};
use crate::resources::{self, ResourceType};
use crate::status::{ApiError, ApiResult, from_store};

/// How many times a charge is retried after losing a race on a quota.
const MAX_RETRIES: usize = 32;

fn parse(text: &str) -> Option<ParsedQuantity> {
    ParsedQuantity::parse(text).ok()
}

/// What writing `object` of `resource` counts, as the quota controller counts it too.
fn usage_of(resource: &ResourceType, object: &Value) -> (Usage, BTreeMap<String, Vec<String>>) {
    let counted = slipway_model::quota::usage(resource.group, resource.plural, object);
    (counted.usage, counted.missing)
}

fn quantities(map: &Value) -> Usage {
    map.as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().and_then(parse).map(|q| (k.clone(), q)))
                .collect()
        })
        .unwrap_or_default()
}

fn render(usage: &Usage) -> Value {
    Value::Object(
        usage
            .iter()
            .map(|(k, v)| (k.clone(), json!(v.canonical())))
            .collect(),
    )
}

fn list(usage: &[(String, ParsedQuantity)]) -> String {
    usage
        .iter()
        .map(|(k, v)| format!("{k}={}", v.canonical()))
        .collect::<Vec<_>>()
        .join(",")
}

/// A charge made against quotas, to give back if the object is not created.
#[derive(Debug, Default)]
pub(crate) struct Charge {
    usage: Usage,
    quotas: Vec<String>,
}

fn quotas_type() -> &'static ResourceType {
    resources::find("", "v1", "resourcequotas").expect("resourcequotas are served")
}

/// Charges the quotas of `namespace` for creating `object`, or refuses with Kubernetes'
/// 403 when it would exceed one.
pub(crate) async fn charge(
    store: &dyn Store,
    resource: &ResourceType,
    namespace: &str,
    name: &str,
    object: &Value,
) -> ApiResult<Charge> {
    let (usage, missing) = usage_of(resource, object);
    charge_usage(store, resource, namespace, name, usage, &missing).await
}

/// What an update changes in quota usage: the increase is charged now, as on a create (a
/// Service turned NodePort takes node ports); the decrease is returned to give back once
/// the update is written.
pub(crate) async fn charge_update(
    store: &dyn Store,
    resource: &ResourceType,
    namespace: &str,
    name: &str,
    old: &Value,
    new: &Value,
) -> ApiResult<(Charge, Usage)> {
    let (before, _) = usage_of(resource, old);
    let (after, _) = usage_of(resource, new);
    let zero = ParsedQuantity::from_value(0, Format::DecimalSI);
    let mut increase = Usage::new();
    let mut decrease = Usage::new();
    for key in before.keys().chain(after.keys()) {
        let was = before.get(key).unwrap_or(&zero);
        let now = after.get(key).unwrap_or(&zero);
        if now > was {
            if let Ok(more) = now.checked_sub(was) {
                increase.insert(key.clone(), more);
            }
        } else if was > now
            && let Ok(less) = was.checked_sub(now)
        {
            decrease.insert(key.clone(), less);
        }
    }
    if increase.is_empty() {
        return Ok((Charge::default(), decrease));
    }
    let charge = charge_usage(store, resource, namespace, name, increase, &BTreeMap::new()).await?;
    Ok((charge, decrease))
}

/// Gives `usage` back to the quotas of `namespace`.
pub(crate) async fn release_usage(store: &dyn Store, namespace: &str, usage: &Usage) {
    if usage.is_empty() {
        return;
    }
    let prefix = objects::prefix(quotas_type(), Some(namespace));
    let Ok(quotas) = store.list(&prefix, ListOptions::default()).await else {
        return;
    };
    for kv in quotas.kvs {
        release(store, &kv.key, usage).await;
    }
}

async fn charge_usage(
    store: &dyn Store,
    resource: &ResourceType,
    namespace: &str,
    name: &str,
    usage: Usage,
    missing: &BTreeMap<String, Vec<String>>,
) -> ApiResult<Charge> {
    let quota_type = quotas_type();
    let mut charge = Charge {
        usage: usage.clone(),
        quotas: Vec::new(),
    };
    let forbidden = |message: String| {
        ApiError::forbidden(format!(
            "{} \"{name}\" is forbidden: {message}",
            resource.qualified_name()
        ))
    };
    let prefix = objects::prefix(quota_type, Some(namespace));
    let quotas = store
        .list(&prefix, ListOptions::default())
        .await
        .map_err(|e| from_store(quota_type, "", e))?;
    for kv in &quotas.kvs {
        let quota_name = kv.key.trim_start_matches(&prefix).to_owned();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let Some(kv) = store
                .get(&kv.key, None)
                .await
                .map_err(|e| from_store(quota_type, &quota_name, e))?
            else {
                break;
            };
            let mut quota = decode(&kv)?;
            let hard = quantities(&quota["spec"]["hard"]);
            let must_specify: Vec<String> = hard
                .keys()
                .filter_map(|r| missing.get(r).map(|c| format!("{r} for: {}", c.join(","))))
                .collect();
            if !must_specify.is_empty() {
                charge.refund(store).await;
                return Err(forbidden(format!(
                    "failed quota: {quota_name}: must specify {}",
                    must_specify.join("; ")
                )));
            }
            let mut used = quantities(&quota["status"]["used"]);
            let mut requested = Vec::new();
            let mut over = Vec::new();
            for (resource_name, limit) in &hard {
                let Some(amount) = usage.get(resource_name) else {
                    continue;
                };
                let current = used
                    .get(resource_name)
                    .cloned()
                    .unwrap_or_else(|| ParsedQuantity::from_value(0, Format::DecimalSI));
                let next = current
                    .checked_add(amount)
                    .map_err(|e| ApiError::internal(e.to_string()))?;
                requested.push((resource_name.clone(), amount.clone()));
                if next > *limit {
                    over.push((resource_name.clone(), current.clone(), limit.clone()));
                }
                used.insert(resource_name.clone(), next);
            }
            if requested.is_empty() {
                break;
            }
            if !over.is_empty() {
                charge.refund(store).await;
                let requested: Vec<_> = over
                    .iter()
                    .map(|(r, _, _)| (r.clone(), usage[r].clone()))
                    .collect();
                let current: Vec<_> = over
                    .iter()
                    .map(|(r, u, _)| (r.clone(), u.clone()))
                    .collect();
                let limited: Vec<_> = over
                    .iter()
                    .map(|(r, _, l)| (r.clone(), l.clone()))
                    .collect();
                return Err(forbidden(format!(
                    "exceeded quota: {quota_name}, requested: {}, used: {}, limited: {}",
                    list(&requested),
                    list(&current),
                    list(&limited)
                )));
            }
            quota["status"]["hard"] = quota["spec"]["hard"].clone();
            quota["status"]["used"] = render(&used);
            match store
                .update(&kv.key, encode(&quota).into(), kv.mod_revision, None)
                .await
            {
                Ok(_) => {
                    charge.quotas.push(kv.key.clone());
                    break;
                }
                Err(StoreError::Conflict { .. }) if attempts < MAX_RETRIES => continue,
                Err(e) => {
                    charge.refund(store).await;
                    return Err(from_store(quota_type, &quota_name, e));
                }
            }
        }
    }
    Ok(charge)
}

impl Charge {
    /// Gives the charge back to every quota it was made against.
    pub(crate) async fn refund(&mut self, store: &dyn Store) {
        for key in std::mem::take(&mut self.quotas) {
            release(store, &key, &self.usage).await;
        }
    }
}

/// Gives back what a deleted object used to the quotas of its namespace.
pub(crate) async fn release_object(
    store: &dyn Store,
    resource: &ResourceType,
    namespace: &str,
    object: &Value,
) {
    let (usage, _) = usage_of(resource, object);
    release_usage(store, namespace, &usage).await;
}

async fn release(store: &dyn Store, key: &str, usage: &Usage) {
    for _ in 0..MAX_RETRIES {
        let Ok(Some(kv)) = store.get(key, None).await else {
            return;
        };
        let Ok(mut quota) = decode(&kv) else { return };
        let hard = quantities(&quota["spec"]["hard"]);
        let mut used = quantities(&quota["status"]["used"]);
        let mut changed = false;
        for (name, amount) in usage {
            if !hard.contains_key(name) {
                continue;
            }
            if let Some(current) = used.get_mut(name)
                && let Ok(next) = current.checked_sub(amount)
            {
                *current = if next < ParsedQuantity::from_value(0, Format::DecimalSI) {
                    ParsedQuantity::from_value(0, Format::DecimalSI)
                } else {
                    next
                };
                changed = true;
            }
        }
        if !changed {
            return;
        }
        quota["status"]["used"] = render(&used);
        match store
            .update(key, encode(&quota).into(), kv.mod_revision, None)
            .await
        {
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => {
                tracing::warn!(%key, error = %e, "giving back quota usage failed; the quota controller will repair it");
                return;
            }
            Ok(_) => return,
        }
    }
}
