//! Label and field selectors from a request's query, with the field names each kind
//! supports, applied to objects on list and watch.

use std::borrow::Cow;

use serde_json::Value;
use slipway_model::fields::FieldSelector;
use slipway_model::labels::Selector;

use crate::objects::labels;
use crate::resources::ResourceType;
use crate::status::{ApiError, ApiResult};

/// Field selectors every kind supports.
const COMMON_FIELDS: &[&str] = &["metadata.name", "metadata.namespace"];

/// The field selectors a kind supports beyond the common ones, as Kubernetes defines them.
fn kind_fields(kind: &str) -> &'static [&'static str] {
    match kind {
        "Pod" => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        "Event" => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        "Secret" => &["type"],
        "Namespace" => &["status.phase"],
        "ReplicaSet" => &["status.replicas"],
        "Node" => &["spec.unschedulable"],
        _ => &[],
    }
}

/// The selectors of one request.
#[derive(Clone, Debug)]
pub struct Filter {
    labels: Selector,
    fields: FieldSelector,
}

impl Filter {
    /// Reads `labelSelector` and `fieldSelector`; a bad one is a 400.
    pub fn from_query(
        resource: &ResourceType,
        label_selector: Option<&str>,
        field_selector: Option<&str>,
    ) -> ApiResult<Filter> {
        let labels = match label_selector {
            Some(s) => Selector::parse(s).map_err(|e| ApiError::bad_request(e.to_string()))?,
            None => Selector::everything(),
        };
        let fields = match field_selector {
            Some(s) => FieldSelector::parse(s).map_err(|e| ApiError::bad_request(e.to_string()))?,
            None => FieldSelector::everything(),
        };
        let supported: Vec<&str> = COMMON_FIELDS
            .iter()
            .chain(kind_fields(resource.kind))
            .copied()
            .collect();
        fields
            .check_supported(&supported)
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        Ok(Filter { labels, fields })
    }

    /// Whether the filter lets everything through.
    pub fn is_everything(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }

    /// Whether `object` passes both selectors.
    pub fn matches(&self, object: &Value) -> bool {
        self.labels.matches(&labels(object))
            && self
                .fields
                .matches_with(|field| Some(Cow::Owned(field_value(object, field))))
    }
}

/// A field's value as Kubernetes' field sets hold it: strings as they are, other scalars
/// printed, anything missing as the empty string.
fn field_value(object: &Value, field: &str) -> String {
    let path = if field == "source" {
        "source.component"
    } else {
        field
    };
    let mut value = object;
    for part in path.split('.') {
        match value.get(part) {
            Some(next) => value = next,
            None => return String::new(),
        }
    }
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::find;
    use serde_json::json;

    fn pod() -> Value {
        json!({"metadata": {"name": "web-1", "namespace": "a", "labels": {"app": "web", "tier": "front"}},
               "spec": {"nodeName": "n1", "hostNetwork": false}, "status": {"phase": "Running"}})
    }

    #[test]
    fn selects_by_labels_and_fields() {
        let pods = find("", "v1", "pods").unwrap();
        let cases = [
            (Some("app=web"), None, true),
            (Some("app=api"), None, false),
            (Some("tier in (front,back),!canary"), None, true),
            (None, Some("spec.nodeName=n1"), true),
            (None, Some("spec.nodeName!=n1"), false),
            (None, Some("status.phase=Running,metadata.name=web-1"), true),
            (None, Some("spec.hostNetwork=false"), true),
            (None, Some("status.podIP="), true),
            (Some("app=web"), Some("metadata.namespace=b"), false),
        ];
        for (labels, fields, expected) in cases {
            let filter = Filter::from_query(pods, labels, fields).unwrap();
            assert_eq!(filter.matches(&pod()), expected, "{labels:?} {fields:?}");
        }
        assert!(
            Filter::from_query(pods, None, None)
                .unwrap()
                .is_everything()
        );
    }

    #[test]
    fn bad_selectors_are_bad_requests() {
        let pods = find("", "v1", "pods").unwrap();
        let configmaps = find("", "v1", "configmaps").unwrap();
        for (resource, labels, fields) in [
            (pods, Some("app in (web"), None),
            (pods, Some("=x"), None),
            (pods, None, Some("spec.foo=x")),
            (configmaps, None, Some("spec.nodeName=n1")),
            (pods, None, Some("noequals")),
        ] {
            let err = Filter::from_query(resource, labels, fields).unwrap_err();
            assert_eq!(err.code().as_u16(), 400, "{labels:?} {fields:?}");
        }
        let err = Filter::from_query(pods, None, Some("spec.foo=x")).unwrap_err();
        assert!(err.message().contains("spec.foo"), "{}", err.message());
    }
}
