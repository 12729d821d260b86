//! LimitRange admission for pods, as Kubernetes' LimitRanger does it: containers get the
//! namespace's default requests and limits where they set none (so plain manifests pass a
//! quota that tracks compute), then each container is checked against the ranges' min,
//! max and maxLimitRequestRatio.

use serde_json::{Value, json};
use slipway_model::quantity::ParsedQuantity;
use slipway_store::{ListOptions, Store};

use crate::objects::{self, decode};
use crate::resources::{self, ResourceType};
use crate::status::{ApiError, ApiResult, from_store};

fn quantity(value: &Value) -> Option<ParsedQuantity> {
    value.as_str().and_then(|s| ParsedQuantity::parse(s).ok())
}

/// The `Container` items of the namespace's LimitRanges, in name order.
async fn container_items(store: &dyn Store, namespace: &str) -> ApiResult<Vec<Value>> {
    let limit_ranges = resources::find("", "v1", "limitranges").expect("limitranges are served");
    let list = store
        .list(
            &objects::prefix(limit_ranges, Some(namespace)),
            ListOptions::default(),
        )
        .await
        .map_err(|e| from_store(limit_ranges, "", e))?;
    let mut items = Vec::new();
    for kv in &list.kvs {
        let range = decode(kv)?;
        for item in range["spec"]["limits"].as_array().into_iter().flatten() {
            if item["type"] == "Container" {
                items.push(item.clone());
            }
        }
    }
    Ok(items)
}

/// Applies the namespace's LimitRanges to a new pod: defaults first, then the checks.
pub(crate) async fn admit_pod(
    store: &dyn Store,
    resource: &ResourceType,
    namespace: &str,
    name: &str,
    pod: &mut Value,
) -> ApiResult<()> {
    if resource.kind != "Pod" {
        return Ok(());
    }
    let items = container_items(store, namespace).await?;
    if items.is_empty() {
        return Ok(());
    }
    let mut problems = Vec::new();
    for list in ["initContainers", "containers"] {
        let Some(containers) = pod["spec"][list].as_array_mut() else {
            continue;
        };
        for container in containers {
            if !container.is_object() {
                continue;
            }
            for item in &items {
                apply_defaults(container, item);
            }
            for item in &items {
                check(container, item, &mut problems);
            }
        }
    }
    match problems.len() {
        0 => Ok(()),
        1 => Err(forbidden(resource, name, &problems[0])),
        _ => Err(forbidden(
            resource,
            name,
            &format!("[{}]", problems.join(", ")),
        )),
    }
}

fn forbidden(resource: &ResourceType, name: &str, message: &str) -> ApiError {
    ApiError::forbidden(format!(
        "{} \"{name}\" is forbidden: {message}",
        resource.qualified_name()
    ))
}

/// Fills in what a container leaves out: limits from `default` (or `max`), requests from
/// `defaultRequest` (or `default`, or `min`), as Kubernetes defaults a LimitRange item.
fn apply_defaults(container: &mut Value, item: &Value) {
    let default_limits = if item["default"].is_object() {
        &item["default"]
    } else {
        &item["max"]
    };
    if !container["resources"].is_object() {
        container["resources"] = json!({});
    }
    for (resource_name, value) in default_limits.as_object().into_iter().flatten() {
        if container["resources"]["limits"][resource_name].is_null() {
            if !container["resources"]["limits"].is_object() {
                container["resources"]["limits"] = json!({});
            }
            container["resources"]["limits"][resource_name] = value.clone();
        }
    }
    let mut default_requests = serde_json::Map::new();
    for source in [&item["min"], default_limits, &item["defaultRequest"]] {
        for (resource_name, value) in source.as_object().into_iter().flatten() {
            default_requests.insert(resource_name.clone(), value.clone());
        }
    }
    for (resource_name, value) in default_requests {
        if container["resources"]["requests"][&resource_name].is_null() {
            if !container["resources"]["requests"].is_object() {
                container["resources"]["requests"] = json!({});
            }
            container["resources"]["requests"][&resource_name] = value;
        }
    }
}

/// Checks a container against one item, with Kubernetes' messages.
fn check(container: &Value, item: &Value, problems: &mut Vec<String>) {
    let requests = &container["resources"]["requests"];
    let limits = &container["resources"]["limits"];
    for (resource_name, min) in item["min"].as_object().into_iter().flatten() {
        let Some(min) = quantity(min) else { continue };
        match quantity(&requests[resource_name]) {
            Some(request) if request < min => problems.push(format!(
                "minimum {resource_name} usage per Container is {}, but request is {}",
                min.canonical(),
                request.canonical()
            )),
            Some(_) => {}
            None => problems.push(format!(
                "minimum {resource_name} usage per Container is {}.  No request is specified",
                min.canonical()
            )),
        }
    }
    for (resource_name, max) in item["max"].as_object().into_iter().flatten() {
        let Some(max) = quantity(max) else { continue };
        match quantity(&limits[resource_name]) {
            Some(limit) if limit > max => problems.push(format!(
                "maximum {resource_name} usage per Container is {}, but limit is {}",
                max.canonical(),
                limit.canonical()
            )),
            Some(_) => {}
            None => problems.push(format!(
                "maximum {resource_name} usage per Container is {}.  No limit is specified",
                max.canonical()
            )),
        }
    }
    for (resource_name, ratio) in item["maxLimitRequestRatio"]
        .as_object()
        .into_iter()
        .flatten()
    {
        let (Some(ratio), Some(limit), Some(request)) = (
            quantity(ratio),
            quantity(&limits[resource_name]),
            quantity(&requests[resource_name]),
        ) else {
            continue;
        };
        if request.is_zero() {
            continue;
        }
        let provided = limit.as_nanos() as f64 / request.as_nanos() as f64;
        if provided > ratio.as_nanos() as f64 / 1e9 {
            problems.push(format!(
                "{resource_name} max limit to request ratio per Container is {}, but provided ratio is {provided:.6}",
                ratio.canonical()
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_then_checks() {
        let item = json!({"type": "Container", "default": {"cpu": "500m"}, "defaultRequest": {"cpu": "100m"},
                          "min": {"cpu": "50m"}, "max": {"cpu": "1"}, "maxLimitRequestRatio": {"cpu": "5"}});
        let mut bare = json!({"name": "c"});
        apply_defaults(&mut bare, &item);
        assert_eq!(
            bare["resources"],
            json!({"limits": {"cpu": "500m"}, "requests": {"cpu": "100m"}})
        );
        let mut problems = Vec::new();
        check(&bare, &item, &mut problems);
        assert!(problems.is_empty(), "{problems:?}");

        let cases = [
            (
                json!({"requests": {"cpu": "10m"}, "limits": {"cpu": "20m"}}),
                "minimum cpu usage per Container is 50m, but request is 10m",
            ),
            (
                json!({"requests": {"cpu": "600m"}, "limits": {"cpu": "2"}}),
                "maximum cpu usage per Container is 1, but limit is 2",
            ),
            (
                json!({"requests": {"cpu": "100m"}, "limits": {"cpu": "800m"}}),
                "cpu max limit to request ratio per Container is 5, but provided ratio is 8.000000",
            ),
        ];
        for (resources, expected) in cases {
            let container = json!({"name": "c", "resources": resources});
            let mut problems = Vec::new();
            check(&container, &item, &mut problems);
            assert_eq!(problems, [expected]);
        }
    }
}
