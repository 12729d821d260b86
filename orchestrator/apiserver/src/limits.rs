//! LimitRange admission for pods, as Kubernetes' LimitRanger does it
//! (`plugin/pkg/admission/limitranger/admission.go`): containers and init containers get
//! the namespace's default requests and limits where they set none (so plain manifests
//! pass a quota that tracks compute), then each LimitRange checks its `Container` items
//! against every container and its `Pod` items against the pod's total, and the first
//! range that finds anything refuses the pod with all it found.
//!
//! `PersistentVolumeClaim` items are not enforced: claims are not a served resource.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use slipway_model::quantity::{ParsedQuantity, QuantityError};
use slipway_store::{ListOptions, Store};

use crate::objects::{self, decode};
use crate::resources::{self, ResourceType};
use crate::status::{ApiError, ApiResult, from_store};

/// Requests or limits by resource name, as Kubernetes' `ResourceList`.
type ResourceList = BTreeMap<String, ParsedQuantity>;

/// `resource.MaxMilliValue`: past it, milli-units no longer fit an `int64`.
const MAX_MILLI_VALUE: i64 = i64::MAX / 1000;

/// Applies the namespace's LimitRanges to a new pod: every range's defaults first (the
/// mutating pass), then each range's checks (the validating pass).
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
    let ranges = limit_ranges(store, namespace).await?;
    for items in &ranges {
        let (limits, requests) = container_defaults(items);
        for container in containers_mut(pod) {
            merge_defaults(container, &limits, &requests);
        }
    }
    for items in &ranges {
        let problems = validate(items, pod).map_err(|e| ApiError::internal(e.to_string()))?;
        if !problems.is_empty() {
            return Err(ApiError::forbidden(format!(
                "{} \"{name}\" is forbidden: {}",
                resource.qualified_name(),
                aggregate(problems)
            )));
        }
    }
    Ok(())
}

/// The `spec.limits` of each of the namespace's LimitRanges, in name order.
async fn limit_ranges(store: &dyn Store, namespace: &str) -> ApiResult<Vec<Vec<Value>>> {
    let limit_ranges = resources::find("", "v1", "limitranges").expect("limitranges are served");
    let list = store
        .list(
            &objects::prefix(limit_ranges, Some(namespace)),
            ListOptions::default(),
        )
        .await
        .map_err(|e| from_store(limit_ranges, "", e))?;
    let mut ranges = Vec::new();
    for kv in &list.kvs {
        let range = decode(kv)?;
        ranges.push(
            range["spec"]["limits"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
        );
    }
    Ok(ranges)
}

/// The containers of the pod's `list` (`containers` or `initContainers`).
fn containers<'a>(pod: &'a Value, list: &str) -> impl Iterator<Item = &'a Value> {
    pod["spec"][list]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c.is_object())
}

/// The pod's containers and init containers, to fill in.
fn containers_mut(pod: &mut Value) -> impl Iterator<Item = &mut Value> {
    pod.get_mut("spec")
        .and_then(Value::as_object_mut)
        .into_iter()
        .flat_map(|spec| spec.iter_mut())
        .filter(|(list, _)| *list == "containers" || *list == "initContainers")
        .filter_map(|(_, list)| list.as_array_mut())
        .flatten()
        .filter(|c| c.is_object())
}

/// The default limits and requests one LimitRange gives containers
/// (`defaultContainerResourceRequirements`). Kubernetes defaults each `Container` item when
/// the LimitRange is written (`SetDefaults_LimitRangeItem`): `default` takes `max` for each
/// resource it leaves out, and `defaultRequest` takes `default`, then `min`. Ours are
/// stored as written, so that happens here; a later item overrides an earlier one.
fn container_defaults(items: &[Value]) -> (Map<String, Value>, Map<String, Value>) {
    let mut limits = Map::new();
    let mut requests = Map::new();
    for item in items.iter().filter(|item| item["type"] == "Container") {
        let mut default = object(&item["default"]);
        let mut default_request = object(&item["defaultRequest"]);
        for (name, value) in object(&item["max"]) {
            default.entry(name).or_insert(value);
        }
        for (name, value) in default.iter().chain(&object(&item["min"])) {
            default_request
                .entry(name.clone())
                .or_insert_with(|| value.clone());
        }
        limits.extend(default);
        requests.extend(default_request);
    }
    (limits, requests)
}

fn object(value: &Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap_or_default()
}

/// Fills in the requests and limits a container leaves out (`mergeContainerResources`).
/// Admission's typed round trip left `resources` and its lists objects or absent, and
/// indexing creates the absent ones.
fn merge_defaults(
    container: &mut Value,
    limits: &Map<String, Value>,
    requests: &Map<String, Value>,
) {
    for (field, defaults) in [("limits", limits), ("requests", requests)] {
        for (name, value) in defaults {
            if container["resources"][field][name].is_null() {
                container["resources"][field][name] = value.clone();
            }
        }
    }
}

/// What one LimitRange finds wrong with the pod (`PodValidateLimitFunc`), item by item,
/// containers before init containers.
fn validate(items: &[Value], pod: &Value) -> Result<Vec<String>, QuantityError> {
    let mut problems = Vec::new();
    for item in items {
        match item["type"].as_str() {
            Some("Container") => {
                let all = containers(pod, "containers").chain(containers(pod, "initContainers"));
                for container in all {
                    let resources = &container["resources"];
                    check_item(
                        "Container",
                        item,
                        &resource_list(&resources["requests"]),
                        &resource_list(&resources["limits"]),
                        &mut problems,
                    );
                }
            }
            Some("Pod") => check_item(
                "Pod",
                item,
                &pod_total(pod, "requests")?,
                &pod_total(pod, "limits")?,
                &mut problems,
            ),
            _ => {}
        }
    }
    Ok(problems)
}

/// The quantities of a `requests` or `limits` object; validation has parsed them all.
fn resource_list(value: &Value) -> ResourceList {
    value
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(name, q)| Some((name.clone(), ParsedQuantity::parse(q.as_str()?).ok()?)))
        .collect()
}

/// The pod's total `requests` or `limits` as `podRequests` / `podLimits` count them: the
/// containers' sum plus every sidecar (an init container with `restartPolicy: Always`,
/// which keeps running), or more if an init container needs more while it runs beside
/// the sidecars started before it. A resource counts if any container names it.
fn pod_total(pod: &Value, field: &str) -> Result<ResourceList, QuantityError> {
    let mut total = ResourceList::new();
    for container in containers(pod, "containers") {
        add(&mut total, &resource_list(&container["resources"][field]))?;
    }
    let mut sidecars = ResourceList::new();
    let mut init = ResourceList::new();
    for container in containers(pod, "initContainers") {
        let own = resource_list(&container["resources"][field]);
        let running = if container["restartPolicy"] == "Always" {
            add(&mut total, &own)?;
            add(&mut sidecars, &own)?;
            sidecars.clone()
        } else {
            let mut running = own;
            add(&mut running, &sidecars)?;
            running
        };
        raise(&mut init, &running);
    }
    raise(&mut total, &init);
    Ok(total)
}

/// `addResourceList`: a resource new to `list` is taken as it is, so it prints as written.
fn add(list: &mut ResourceList, other: &ResourceList) -> Result<(), QuantityError> {
    for (name, quantity) in other {
        let sum = match list.get(name) {
            Some(current) => current.checked_add(quantity)?,
            None => quantity.clone(),
        };
        list.insert(name.clone(), sum);
    }
    Ok(())
}

/// `maxResourceList`: each resource of `list` raised to `other`'s where that is greater.
fn raise(list: &mut ResourceList, other: &ResourceList) {
    for (name, quantity) in other {
        if list.get(name).is_none_or(|current| quantity > current) {
            list.insert(name.clone(), quantity.clone());
        }
    }
}

/// Checks one item's min, max and maxLimitRequestRatio against requests and limits.
fn check_item(
    limit_type: &str,
    item: &Value,
    requests: &ResourceList,
    limits: &ResourceList,
    problems: &mut Vec<String>,
) {
    for (name, enforced) in resource_list(&item["min"]) {
        problems.extend(min_constraint(
            limit_type, &name, &enforced, requests, limits,
        ));
    }
    for (name, enforced) in resource_list(&item["max"]) {
        problems.extend(max_constraint(
            limit_type, &name, &enforced, requests, limits,
        ));
    }
    for (name, enforced) in resource_list(&item["maxLimitRequestRatio"]) {
        problems.extend(ratio_constraint(
            limit_type, &name, &enforced, requests, limits,
        ));
    }
}

/// `requestLimitEnforcedValues`: the request, limit and bound in milli-units, or in whole
/// units when any of them is too large for milli-units; an absent quantity counts as zero.
/// Both round up, so Kubernetes compares CPU to the millicore.
fn comparable(
    request: Option<&ParsedQuantity>,
    limit: Option<&ParsedQuantity>,
    enforced: &ParsedQuantity,
) -> (i64, i64, i64) {
    let value = |q: Option<&ParsedQuantity>| q.map_or(0, ParsedQuantity::as_value);
    let values = (value(request), value(limit), enforced.as_value());
    if values.0 > MAX_MILLI_VALUE || values.1 > MAX_MILLI_VALUE || values.2 > MAX_MILLI_VALUE {
        return values;
    }
    let milli = |q: Option<&ParsedQuantity>| q.map_or(0, ParsedQuantity::as_milli);
    (milli(request), milli(limit), enforced.as_milli())
}

/// `minConstraint`: a request at least the minimum, and a limit, if set, too.
fn min_constraint(
    limit_type: &str,
    name: &str,
    enforced: &ParsedQuantity,
    requests: &ResourceList,
    limits: &ResourceList,
) -> Option<String> {
    let (request, limit) = (requests.get(name), limits.get(name));
    let (observed_request, observed_limit, bound) = comparable(request, limit, enforced);
    let Some(request) = request else {
        return Some(format!(
            "minimum {name} usage per {limit_type} is {enforced}.  No request is specified"
        ));
    };
    if observed_request < bound {
        return Some(format!(
            "minimum {name} usage per {limit_type} is {enforced}, but request is {request}"
        ));
    }
    let limit = limit.filter(|_| observed_limit < bound)?;
    Some(format!(
        "minimum {name} usage per {limit_type} is {enforced}, but limit is {limit}"
    ))
}

/// `maxConstraint`: a limit at most the maximum, and a request, if set, too.
fn max_constraint(
    limit_type: &str,
    name: &str,
    enforced: &ParsedQuantity,
    requests: &ResourceList,
    limits: &ResourceList,
) -> Option<String> {
    let (request, limit) = (requests.get(name), limits.get(name));
    let (observed_request, observed_limit, bound) = comparable(request, limit, enforced);
    let Some(limit) = limit else {
        return Some(format!(
            "maximum {name} usage per {limit_type} is {enforced}.  No limit is specified"
        ));
    };
    if observed_limit > bound {
        return Some(format!(
            "maximum {name} usage per {limit_type} is {enforced}, but limit is {limit}"
        ));
    }
    let request = request.filter(|_| observed_request > bound)?;
    Some(format!(
        "maximum {name} usage per {limit_type} is {enforced}, but request is {request}"
    ))
}

/// `limitRequestRatioConstraint`: a non-zero request and limit, the limit at most `enforced`
/// times the request. The ratio is a float, as Kubernetes prints it (`%f`).
fn ratio_constraint(
    limit_type: &str,
    name: &str,
    enforced: &ParsedQuantity,
    requests: &ResourceList,
    limits: &ResourceList,
) -> Option<String> {
    let (request, limit) = (requests.get(name), limits.get(name));
    let (observed_request, observed_limit, _) = comparable(request, limit, enforced);
    let prefix = format!("{name} max limit to request ratio per {limit_type} is {enforced}");
    if request.is_none() || observed_request == 0 {
        return Some(format!(
            "{prefix}, but no request is specified or request is 0"
        ));
    }
    if limit.is_none() || observed_limit == 0 {
        return Some(format!("{prefix}, but no limit is specified or limit is 0"));
    }
    let observed = observed_limit as f64 / observed_request as f64;
    let (scaled, bound) = if enforced.as_value() <= MAX_MILLI_VALUE {
        (observed * 1000.0, enforced.as_milli() as f64)
    } else {
        (observed, enforced.as_value() as f64)
    };
    (scaled > bound).then(|| format!("{prefix}, but provided ratio is {observed:.6}"))
}

/// The message of `utilerrors.NewAggregate`: repeats dropped, a lone message as it is,
/// several in brackets.
fn aggregate(problems: Vec<String>) -> String {
    let mut unique: Vec<String> = Vec::new();
    for problem in problems {
        if !unique.contains(&problem) {
            unique.push(problem);
        }
    }
    match unique.as_slice() {
        [one] => one.clone(),
        _ => format!("[{}]", unique.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn list(value: Value) -> ResourceList {
        resource_list(&value)
    }

    #[test]
    fn defaults_fill_each_resource_as_kubernetes_defaults_the_item() {
        let items = [
            json!({"type": "Container", "default": {"cpu": "500m"}, "defaultRequest": {"cpu": "100m"},
                   "max": {"cpu": "1", "memory": "1Gi"}, "min": {"ephemeral-storage": "1Gi"}}),
            json!({"type": "Pod", "max": {"cpu": "4"}}),
        ];
        let (limits, requests) = container_defaults(&items);
        assert_eq!(
            Value::Object(limits.clone()),
            json!({"cpu": "500m", "memory": "1Gi"}),
            "max fills the limits default leaves out"
        );
        assert_eq!(
            Value::Object(requests.clone()),
            json!({"cpu": "100m", "memory": "1Gi", "ephemeral-storage": "1Gi"}),
            "defaultRequest, then default, then min"
        );

        let mut container = json!({"name": "c", "resources": {"limits": {"cpu": "2"}}});
        merge_defaults(&mut container, &limits, &requests);
        assert_eq!(
            container["resources"],
            json!({"limits": {"cpu": "2", "memory": "1Gi"},
                   "requests": {"cpu": "100m", "memory": "1Gi", "ephemeral-storage": "1Gi"}})
        );

        let later = json!({"type": "Container", "default": {"cpu": "700m"}});
        let (limits, _) = container_defaults(&[items[0].clone(), later]);
        assert_eq!(
            limits["cpu"], "700m",
            "a later item overrides an earlier one"
        );
    }

    #[test]
    fn container_constraints_say_what_kubernetes_says() {
        let item = json!({"type": "Container", "min": {"cpu": "50m"}, "max": {"cpu": "1"},
                          "maxLimitRequestRatio": {"cpu": "5"}});
        let cases = [
            (
                json!({"requests": {"cpu": "100m"}, "limits": {"cpu": "500m"}}),
                vec![],
            ),
            (
                json!({"requests": {"cpu": "10m"}, "limits": {"cpu": "20m"}}),
                vec!["minimum cpu usage per Container is 50m, but request is 10m"],
            ),
            (
                json!({"requests": {"cpu": "60m"}, "limits": {"cpu": "40m"}}),
                vec!["minimum cpu usage per Container is 50m, but limit is 40m"],
            ),
            (
                json!({"requests": {"cpu": "600m"}, "limits": {"cpu": "2"}}),
                vec!["maximum cpu usage per Container is 1, but limit is 2"],
            ),
            (
                json!({"requests": {"cpu": "1500m"}, "limits": {"cpu": "1"}}),
                vec!["maximum cpu usage per Container is 1, but request is 1500m"],
            ),
            (
                json!({"requests": {"cpu": "100m"}, "limits": {"cpu": "800m"}}),
                vec![
                    "cpu max limit to request ratio per Container is 5, but provided ratio is 8.000000",
                ],
            ),
            (
                json!({"limits": {"cpu": "100m"}}),
                vec![
                    "minimum cpu usage per Container is 50m.  No request is specified",
                    "cpu max limit to request ratio per Container is 5, but no request is specified or request is 0",
                ],
            ),
            (
                json!({"requests": {"cpu": "100m"}}),
                vec![
                    "maximum cpu usage per Container is 1.  No limit is specified",
                    "cpu max limit to request ratio per Container is 5, but no limit is specified or limit is 0",
                ],
            ),
        ];
        for (resources, expected) in cases {
            let mut problems = Vec::new();
            check_item(
                "Container",
                &item,
                &list(resources["requests"].clone()),
                &list(resources["limits"].clone()),
                &mut problems,
            );
            assert_eq!(problems, expected, "{resources}");
        }
    }

    #[test]
    fn bounds_compare_to_the_milli_unit_and_print_quantities_as_written() {
        let item = json!({"min": {"cpu": "1m"}, "max": {"memory": "1.5Gi"}});
        let mut problems = Vec::new();
        check_item(
            "Container",
            &item,
            &list(json!({"cpu": "500u"})),
            &list(json!({"memory": "1610612737"})),
            &mut problems,
        );
        assert_eq!(
            problems,
            ["maximum memory usage per Container is 1536Mi, but limit is 1610612737"],
            "500u rounds up to the 1m it must reach; 1.5Gi prints canonically"
        );
    }

    #[test]
    fn pod_totals_add_containers_and_sidecars_and_cover_init_containers() {
        let pod = json!({"spec": {
            "initContainers": [
                {"name": "setup", "resources": {"requests": {"cpu": "1100m"}}},
                {"name": "proxy", "restartPolicy": "Always",
                 "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}}},
                {"name": "migrate", "resources": {"requests": {"cpu": "900m", "memory": "600Mi"}}}
            ],
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "500m", "memory": "256Mi"}}},
                {"name": "b", "resources": {"requests": {"cpu": "500m", "memory": "256Mi"}}}
            ]
        }});
        let total = pod_total(&pod, "requests").unwrap();
        // cpu: the containers' 1 and the sidecar's 250m outweigh setup's 1100m and
        // migrate's 900m beside the sidecar.
        assert_eq!(total["cpu"].to_string(), "1250m");
        // memory: migrate's 600Mi beside the sidecar's 64Mi outweighs 512Mi + 64Mi.
        assert_eq!(total["memory"].to_string(), "664Mi");
        assert!(pod_total(&pod, "limits").unwrap().is_empty());

        let lone = json!({"spec": {"containers": [{"name": "a", "resources": {"requests": {"cpu": "0.5"}}}]}});
        assert_eq!(
            pod_total(&lone, "requests").unwrap()["cpu"].to_string(),
            "500m"
        );
    }

    #[test]
    fn pod_items_check_the_total_with_kubernetes_messages() {
        let items = [
            json!({"type": "Pod", "max": {"cpu": "2"}, "min": {"memory": "1Gi"},
                            "maxLimitRequestRatio": {"cpu": "2"}}),
        ];
        let container = |cpu_request: &str, cpu_limit: &str| {
            json!({"name": "c", "resources": {
                "requests": {"cpu": cpu_request, "memory": "256Mi"},
                "limits": {"cpu": cpu_limit, "memory": "512Mi"}}})
        };
        let pod = json!({"spec": {"containers": [container("250m", "1500m"), container("500m", "1500m")]}});
        assert_eq!(
            validate(&items, &pod).unwrap(),
            [
                "minimum memory usage per Pod is 1Gi, but request is 512Mi",
                "maximum cpu usage per Pod is 2, but limit is 3",
                "cpu max limit to request ratio per Pod is 2, but provided ratio is 4.000000",
            ]
        );
        let pod = json!({"spec": {"containers": [container("1", "1"), container("1", "1"),
                                                   container("1", "1"), container("1", "1")]}});
        assert_eq!(
            validate(&items, &pod).unwrap(),
            ["maximum cpu usage per Pod is 2, but limit is 4"]
        );
    }

    #[test]
    fn aggregate_is_bare_for_one_message_and_bracketed_for_several() {
        let same = "maximum cpu usage per Container is 1, but limit is 2";
        assert_eq!(aggregate(vec![same.into(), same.into()]), same);
        assert_eq!(
            aggregate(vec![same.into(), "b".into(), same.into()]),
            format!("[{same}, b]")
        );
    }
}
