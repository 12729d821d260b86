//! Pods and pod specs: `SetDefaults_Pod` and the core of upstream's `ValidatePodSpec`
//! (`k8s.io/kubernetes/pkg/apis/core/validation/validation.go`). Pod templates of workloads
//! reuse [`validate_pod_spec`].

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, ResourceRequirements};
use serde_json::Value;
use slipway_model::validation::FieldError;

use crate::Admit;
use crate::checks::{
    PORT_RANGE, is_env_var_name, is_valid_port_name, is_valid_port_num, parse_resource_list,
    validate_dns1123_label,
};
use crate::defaults;

impl Admit for Pod {
    fn set_defaults(&mut self, old: Option<&Self>) {
        let Some(spec) = self.spec.as_mut() else {
            return;
        };
        defaults::pod_spec(spec);
        // `SetDefaults_Pod`: only Pods, not templates, get these two.
        spec.enable_service_links.get_or_insert(true);
        if old.is_none() {
            service_account(spec);
        }
        let init = spec.init_containers.iter_mut().flatten();
        for container in spec.containers.iter_mut().chain(init) {
            requests_from_limits(container);
        }
    }

    fn validate(&self, _input: &Value, _old: Option<&Self>) -> Vec<FieldError> {
        let spec = self.spec.clone().unwrap_or_default();
        validate_pod_spec(&spec, "spec", true)
    }
}

/// A new pod runs as its namespace's `default` ServiceAccount unless it names one, as the
/// ServiceAccount admission plugin decides; the deprecated `serviceAccount` field mirrors
/// the name, as the v1 conversion writes it (an old manifest may set only that one).
fn service_account(spec: &mut PodSpec) {
    let name = spec
        .service_account_name
        .clone()
        .filter(|n| !n.is_empty())
        .or_else(|| spec.service_account.clone().filter(|n| !n.is_empty()))
        .unwrap_or_else(|| "default".to_owned());
    spec.service_account = Some(name.clone());
    spec.service_account_name = Some(name);
}

/// A container that sets only limits requests exactly that much (`SetDefaults_Pod`).
fn requests_from_limits(container: &mut Container) {
    let Some(resources) = container.resources.as_mut() else {
        return;
    };
    let Some(limits) = resources.limits.as_ref() else {
        return;
    };
    let requests = resources.requests.get_or_insert_with(Default::default);
    for (name, quantity) in limits {
        requests
            .entry(name.clone())
            .or_insert_with(|| quantity.clone());
    }
}

const RESTART_POLICIES: [&str; 3] = ["Always", "OnFailure", "Never"];
const DNS_POLICIES: [&str; 4] = ["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"];
const PULL_POLICIES: [&str; 3] = ["Always", "IfNotPresent", "Never"];
const MESSAGE_POLICIES: [&str; 2] = ["File", "FallbackToLogsOnError"];
const PROTOCOLS: [&str; 3] = ["SCTP", "TCP", "UDP"];

/// `ValidatePodSpec`, for the rules this crate covers. `is_pod` adds the checks upstream runs
/// only for Pods (`validateContainersOnlyForPod`), not for templates.
pub(crate) fn validate_pod_spec(spec: &PodSpec, path: &str, is_pod: bool) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let volumes = validate_volumes(spec, path, &mut errs);
    if spec.containers.is_empty() {
        errs.push(FieldError::required(format!("{path}.containers"), ""));
    }
    // `validateContainers` then `validateInitContainers`: names are unique across both lists,
    // so a clash is reported on the init container.
    let mut names = BTreeSet::new();
    let lists = [
        ("containers", spec.containers.as_slice()),
        (
            "initContainers",
            spec.init_containers.as_deref().unwrap_or_default(),
        ),
    ];
    for (list, containers) in lists {
        for (i, container) in containers.iter().enumerate() {
            let at = format!("{path}.{list}[{i}]");
            if !container.name.is_empty() && !names.insert(container.name.as_str()) {
                errs.push(FieldError::duplicate(
                    format!("{at}.name"),
                    container.name.as_str(),
                ));
            }
            validate_container(container, &at, &volumes, is_pod, &mut errs);
        }
    }
    if let Some(policy) = spec.restart_policy.as_deref()
        && !RESTART_POLICIES.contains(&policy)
    {
        errs.push(FieldError::not_supported(
            format!("{path}.restartPolicy"),
            policy,
            &RESTART_POLICIES,
        ));
    }
    if let Some(policy) = spec.dns_policy.as_deref()
        && !DNS_POLICIES.contains(&policy)
    {
        errs.push(FieldError::not_supported(
            format!("{path}.dnsPolicy"),
            policy,
            &DNS_POLICIES,
        ));
    }
    errs.extend(crate::checks::validate_non_negative(
        spec.termination_grace_period_seconds,
        &format!("{path}.terminationGracePeriodSeconds"),
    ));
    errs
}

/// `ValidateVolumes` for names only; returns the names for the mounts to refer to.
fn validate_volumes<'s>(
    spec: &'s PodSpec,
    path: &str,
    errs: &mut Vec<FieldError>,
) -> BTreeSet<&'s str> {
    let mut names = BTreeSet::new();
    for (i, volume) in spec.volumes.iter().flatten().enumerate() {
        let at = format!("{path}.volumes[{i}].name");
        let name_errs = validate_dns1123_label(&volume.name, &at);
        if name_errs.is_empty() && !names.insert(volume.name.as_str()) {
            errs.push(FieldError::duplicate(at, volume.name.as_str()));
        }
        errs.extend(name_errs);
    }
    names
}

fn validate_container(
    container: &Container,
    at: &str,
    volumes: &BTreeSet<&str>,
    is_pod: bool,
    errs: &mut Vec<FieldError>,
) {
    errs.extend(validate_dns1123_label(
        &container.name,
        &format!("{at}.name"),
    ));
    match container.image.as_deref() {
        None | Some("") => errs.push(FieldError::required(format!("{at}.image"), "")),
        Some(image) if is_pod && image.trim() != image => errs.push(FieldError::invalid(
            format!("{at}.image"),
            image,
            "must not have leading or trailing whitespace",
        )),
        Some(_) => {}
    }
    if let Some(policy) = container.image_pull_policy.as_deref()
        && !PULL_POLICIES.contains(&policy)
    {
        errs.push(FieldError::not_supported(
            format!("{at}.imagePullPolicy"),
            policy,
            &PULL_POLICIES,
        ));
    }
    if let Some(policy) = container.termination_message_policy.as_deref()
        && !MESSAGE_POLICIES.contains(&policy)
    {
        errs.push(FieldError::not_supported(
            format!("{at}.terminationMessagePolicy"),
            policy,
            &MESSAGE_POLICIES,
        ));
    }
    validate_ports(container, at, errs);
    for (i, env) in container.env.iter().flatten().enumerate() {
        let name_at = format!("{at}.env[{i}].name");
        if env.name.is_empty() {
            errs.push(FieldError::required(name_at, ""));
        } else {
            for msg in is_env_var_name(&env.name) {
                errs.push(FieldError::invalid(
                    name_at.as_str(),
                    env.name.as_str(),
                    msg,
                ));
            }
        }
    }
    validate_mounts(container, at, volumes, errs);
    if let Some(resources) = container.resources.as_ref() {
        validate_resources(resources, &format!("{at}.resources"), errs);
    }
}

/// `validateContainerPorts`: ports in range, names valid and unique within the container.
fn validate_ports(container: &Container, at: &str, errs: &mut Vec<FieldError>) {
    let mut names = BTreeSet::new();
    for (i, port) in container.ports.iter().flatten().enumerate() {
        let port_at = format!("{at}.ports[{i}]");
        if let Some(name) = port.name.as_deref().filter(|n| !n.is_empty()) {
            let name_errs = is_valid_port_name(name);
            if name_errs.is_empty() && !names.insert(name) {
                errs.push(FieldError::duplicate(format!("{port_at}.name"), name));
            }
            for msg in name_errs {
                errs.push(FieldError::invalid(format!("{port_at}.name"), name, msg));
            }
        }
        if port.container_port == 0 {
            errs.push(FieldError::required(format!("{port_at}.containerPort"), ""));
        } else if !is_valid_port_num(port.container_port) {
            errs.push(FieldError::invalid(
                format!("{port_at}.containerPort"),
                i64::from(port.container_port),
                PORT_RANGE,
            ));
        }
        if let Some(host_port) = port.host_port.filter(|&p| p != 0)
            && !is_valid_port_num(host_port)
        {
            errs.push(FieldError::invalid(
                format!("{port_at}.hostPort"),
                i64::from(host_port),
                PORT_RANGE,
            ));
        }
        match port.protocol.as_deref() {
            None | Some("") => errs.push(FieldError::required(format!("{port_at}.protocol"), "")),
            Some(p) if !PROTOCOLS.contains(&p) => errs.push(FieldError::not_supported(
                format!("{port_at}.protocol"),
                p,
                &PROTOCOLS,
            )),
            Some(_) => {}
        }
    }
}

/// `ValidateVolumeMounts`: each mount names a volume of the pod and has a unique path.
fn validate_mounts(
    container: &Container,
    at: &str,
    volumes: &BTreeSet<&str>,
    errs: &mut Vec<FieldError>,
) {
    let mut paths = BTreeSet::new();
    for (i, mount) in container.volume_mounts.iter().flatten().enumerate() {
        let mount_at = format!("{at}.volumeMounts[{i}]");
        if mount.name.is_empty() {
            errs.push(FieldError::required(format!("{mount_at}.name"), ""));
        } else if !volumes.contains(mount.name.as_str()) {
            // Upstream says `Not found: "<name>"` (field.NotFound), a kind the model lacks.
            errs.push(FieldError::invalid(
                format!("{mount_at}.name"),
                mount.name.as_str(),
                "not found",
            ));
        }
        if mount.mount_path.is_empty() {
            errs.push(FieldError::required(format!("{mount_at}.mountPath"), ""));
        } else if !paths.insert(mount.mount_path.as_str()) {
            errs.push(FieldError::invalid(
                format!("{mount_at}.mountPath"),
                mount.mount_path.as_str(),
                "must be unique",
            ));
        }
    }
}

/// `ValidateResourceRequirements`: quantities parse and are not negative, and a request is
/// no larger than the limit of the same resource.
fn validate_resources(resources: &ResourceRequirements, at: &str, errs: &mut Vec<FieldError>) {
    let limits_at = format!("{at}.limits");
    let requests_at = format!("{at}.requests");
    let limits = parse_resource_list(resources.limits.as_ref(), &limits_at, errs);
    let requests = parse_resource_list(resources.requests.as_ref(), &requests_at, errs);
    for (name, request) in &requests {
        if let Some(limit) = limits.get(name)
            && request > limit
        {
            errs.push(FieldError::invalid(
                requests_at.as_str(),
                request.canonical(),
                format!(
                    "must be less than or equal to {name} limit of {}",
                    limit.canonical()
                ),
            ));
        }
    }
}
