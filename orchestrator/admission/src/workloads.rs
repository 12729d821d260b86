//! Deployments and ReplicaSets: `SetDefaults_Deployment` / `SetDefaults_ReplicaSet`
//! (`pkg/apis/apps/v1/defaults.go`) and `ValidateDeploymentSpec` / `ValidateReplicaSetSpec`
//! (`pkg/apis/apps/validation/validation.go`).

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, ReplicaSet, ReplicaSetSpec,
    RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;
use slipway_model::labels::{Selector, validate_label_selector};
use slipway_model::validation::{FieldError, validate_labels};

use crate::Admit;
use crate::checks::{
    invalid_without_value, is_zero, validate_int_or_percent, validate_non_negative,
};
use crate::defaults;
use crate::pod::validate_pod_spec;

const STRATEGY_TYPES: [&str; 2] = ["Recreate", "RollingUpdate"];

impl Admit for Deployment {
    fn set_defaults(&mut self, _old: Option<&Self>) {
        let Some(spec) = self.spec.as_mut() else {
            return;
        };
        spec.replicas.get_or_insert(1);
        let strategy = spec
            .strategy
            .get_or_insert_with(DeploymentStrategy::default);
        let kind = strategy.type_.get_or_insert_with(|| "RollingUpdate".into());
        if kind == "RollingUpdate" {
            let rolling = strategy
                .rolling_update
                .get_or_insert_with(RollingUpdateDeployment::default);
            rolling
                .max_unavailable
                .get_or_insert_with(|| IntOrString::String("25%".into()));
            rolling
                .max_surge
                .get_or_insert_with(|| IntOrString::String("25%".into()));
        }
        spec.revision_history_limit.get_or_insert(10);
        spec.progress_deadline_seconds.get_or_insert(600);
        template_defaults(&mut spec.template);
    }

    fn validate(&self, input: &Value, old: Option<&Self>) -> Vec<FieldError> {
        let spec = self.spec.clone().unwrap_or_default();
        let mut errs = validate_controller(input, spec.replicas, &spec.selector, &spec.template);
        errs.extend(validate_deployment_spec(&spec));
        if let Some(old) = old.and_then(|o| o.spec.as_ref()) {
            errs.extend(immutable_selector(&spec.selector, &old.selector));
        }
        errs
    }
}

impl Admit for ReplicaSet {
    fn set_defaults(&mut self, _old: Option<&Self>) {
        let Some(spec) = self.spec.as_mut() else {
            return;
        };
        spec.replicas.get_or_insert(1);
        if let Some(template) = spec.template.as_mut() {
            template_defaults(template);
        }
    }

    fn validate(&self, input: &Value, old: Option<&Self>) -> Vec<FieldError> {
        let spec: ReplicaSetSpec = self.spec.clone().unwrap_or_default();
        let template = spec.template.clone().unwrap_or_default();
        let mut errs = validate_controller(input, spec.replicas, &spec.selector, &template);
        errs.extend(validate_non_negative(
            spec.min_ready_seconds,
            "spec.minReadySeconds",
        ));
        if let Some(old) = old.and_then(|o| o.spec.as_ref()) {
            errs.extend(immutable_selector(&spec.selector, &old.selector));
        }
        errs
    }
}

fn template_defaults(template: &mut PodTemplateSpec) {
    if let Some(spec) = template.spec.as_mut() {
        defaults::pod_spec(spec);
    }
}

/// What Deployments and ReplicaSets share: replicas, a non-empty selector and a template whose
/// labels it matches and whose pods always restart (`ValidatePodTemplateSpecForReplicaSet`).
fn validate_controller(
    input: &Value,
    replicas: Option<i32>,
    selector: &LabelSelector,
    template: &PodTemplateSpec,
) -> Vec<FieldError> {
    let mut errs = validate_non_negative(replicas, "spec.replicas");
    // The typed struct defaults an absent selector to an empty one; upstream's is a pointer.
    let selector_given = input
        .pointer("/spec/selector")
        .is_some_and(|s| !s.is_null());
    let selector_empty = selector.match_labels.as_ref().is_none_or(|m| m.is_empty())
        && selector
            .match_expressions
            .as_ref()
            .is_none_or(|e| e.is_empty());
    let mut matcher = None;
    if !selector_given {
        errs.push(FieldError::required("spec.selector", ""));
    } else {
        let selector_errs = validate_label_selector(selector, "spec.selector");
        if selector_empty {
            // Upstream says "deployment" for ReplicaSets too.
            errs.push(invalid_without_value(
                "spec.selector",
                "empty selector is invalid for deployment",
            ));
        } else if selector_errs.is_empty() {
            matcher = Selector::try_from(selector).ok();
        }
        errs.extend(selector_errs);
    }
    let labels = template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    errs.extend(validate_labels(&labels, "spec.template.metadata.labels"));
    if let Some(matcher) = matcher
        && !matcher.matches(&labels)
    {
        errs.push(invalid_without_value(
            "spec.template.metadata.labels",
            "`selector` does not match template `labels`",
        ));
    }
    let pod_spec = template.spec.clone().unwrap_or_default();
    errs.extend(validate_pod_spec(&pod_spec, "spec.template.spec", false));
    if let Some(policy) = pod_spec
        .restart_policy
        .as_deref()
        .filter(|p| *p != "Always")
    {
        errs.push(FieldError::not_supported(
            "spec.template.spec.restartPolicy",
            policy,
            &["Always"],
        ));
    }
    errs
}

/// The Deployment-only rules: strategy, history and progress deadline.
fn validate_deployment_spec(spec: &DeploymentSpec) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(strategy) = spec.strategy.as_ref() {
        errs.extend(validate_strategy(strategy));
    }
    errs.extend(validate_non_negative(
        spec.revision_history_limit,
        "spec.revisionHistoryLimit",
    ));
    errs.extend(validate_non_negative(
        spec.min_ready_seconds,
        "spec.minReadySeconds",
    ));
    if let Some(deadline) = spec.progress_deadline_seconds {
        let deadline_errs = validate_non_negative(Some(deadline), "spec.progressDeadlineSeconds");
        if deadline_errs.is_empty() && deadline <= spec.min_ready_seconds.unwrap_or(0) {
            errs.push(FieldError::invalid(
                "spec.progressDeadlineSeconds",
                i64::from(deadline),
                "must be greater than minReadySeconds",
            ));
        }
        errs.extend(deadline_errs);
    }
    errs
}

/// `ValidateDeploymentStrategy` and `ValidateRollingUpdateDeployment`.
fn validate_strategy(strategy: &DeploymentStrategy) -> Vec<FieldError> {
    let mut errs = Vec::new();
    match strategy.type_.as_deref().unwrap_or_default() {
        "Recreate" => {
            if strategy.rolling_update.is_some() {
                errs.push(FieldError::forbidden(
                    "spec.strategy.rollingUpdate",
                    "may not be specified when strategy `type` is 'Recreate'",
                ));
            }
        }
        "RollingUpdate" => match strategy.rolling_update.as_ref() {
            None => errs.push(FieldError::required(
                "spec.strategy.rollingUpdate",
                "this should be defaulted and never be nil",
            )),
            Some(rolling) => {
                let unavailable_at = "spec.strategy.rollingUpdate.maxUnavailable";
                let surge_at = "spec.strategy.rollingUpdate.maxSurge";
                let unavailable = rolling
                    .max_unavailable
                    .clone()
                    .unwrap_or(IntOrString::Int(0));
                let surge = rolling.max_surge.clone().unwrap_or(IntOrString::Int(0));
                errs.extend(validate_int_or_percent(&unavailable, unavailable_at, true));
                errs.extend(validate_int_or_percent(&surge, surge_at, false));
                if is_zero(&unavailable) && is_zero(&surge) {
                    let shown = match &unavailable {
                        IntOrString::Int(n) => FieldError::invalid(
                            unavailable_at,
                            i64::from(*n),
                            "may not be 0 when `maxSurge` is 0",
                        ),
                        IntOrString::String(s) => FieldError::invalid(
                            unavailable_at,
                            s.as_str(),
                            "may not be 0 when `maxSurge` is 0",
                        ),
                    };
                    errs.push(shown);
                }
            }
        },
        other => errs.push(FieldError::not_supported(
            "spec.strategy.type",
            other,
            &STRATEGY_TYPES,
        )),
    }
    errs
}

/// apps/v1 selectors never change: a new selector could orphan the old pods.
fn immutable_selector(new: &LabelSelector, old: &LabelSelector) -> Vec<FieldError> {
    if new == old {
        Vec::new()
    } else {
        vec![invalid_without_value("spec.selector", "field is immutable")]
    }
}
