//! Kubernetes' defaulting for pod specs, shared by Pods and pod templates
//! (`k8s.io/kubernetes/pkg/apis/core/v1/defaults.go`). Kind-specific defaults live with their
//! kind.

use k8s_openapi::api::core::v1::{Container, PodSecurityContext, PodSpec, Probe, Volume};

/// `SetDefaults_PodSpec` and the per-field functions it reaches (`SetDefaults_Container`,
/// `SetDefaults_Volume`, `SetDefaults_Probe`, ...). Pod-only defaults are in `pod.rs`.
pub(crate) fn pod_spec(spec: &mut PodSpec) {
    spec.dns_policy.get_or_insert_with(|| "ClusterFirst".into());
    spec.restart_policy.get_or_insert_with(|| "Always".into());
    spec.security_context
        .get_or_insert_with(PodSecurityContext::default);
    spec.termination_grace_period_seconds.get_or_insert(30);
    spec.scheduler_name
        .get_or_insert_with(|| "default-scheduler".into());
    let host_network = spec.host_network == Some(true);
    let init = spec.init_containers.iter_mut().flatten();
    for container in spec.containers.iter_mut().chain(init) {
        self::container(container, host_network);
    }
    for volume in spec.volumes.iter_mut().flatten() {
        self::volume(volume);
    }
}

fn container(container: &mut Container, host_network: bool) {
    if container.image_pull_policy.is_none() {
        let tag = image_tag(container.image.as_deref().unwrap_or_default());
        let policy = if tag == Some("latest") {
            "Always"
        } else {
            "IfNotPresent"
        };
        container.image_pull_policy = Some(policy.into());
    }
    container
        .termination_message_path
        .get_or_insert_with(|| "/dev/termination-log".into());
    container
        .termination_message_policy
        .get_or_insert_with(|| "File".into());
    // Go prints the non-pointer `resources` struct even when empty; kubectl users expect it.
    container.resources.get_or_insert_with(Default::default);
    for port in container.ports.iter_mut().flatten() {
        port.protocol.get_or_insert_with(|| "TCP".into());
        if host_network && port.host_port.is_none_or(|p| p == 0) {
            port.host_port = Some(port.container_port);
        }
    }
    for env in container.env.iter_mut().flatten() {
        if let Some(field_ref) = env.value_from.as_mut().and_then(|v| v.field_ref.as_mut()) {
            field_ref.api_version.get_or_insert_with(|| "v1".into());
        }
    }
    let probes = [
        &mut container.liveness_probe,
        &mut container.readiness_probe,
        &mut container.startup_probe,
    ];
    for probe in probes.into_iter().flatten() {
        self::probe(probe);
    }
}

/// The tag of an image reference as `parsers.ParseImageName` sees it: `latest` when neither
/// a tag nor a digest is given, none when only a digest is.
fn image_tag(image: &str) -> Option<&str> {
    let (name, digest) = match image.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (image, None),
    };
    // A colon before the last slash belongs to a registry's port, not a tag.
    let last_part = name.rsplit('/').next().unwrap_or(name);
    match last_part.rsplit_once(':') {
        Some((_, tag)) => Some(tag),
        None if digest.is_none() => Some("latest"),
        None => None,
    }
}

fn probe(probe: &mut Probe) {
    probe.timeout_seconds.get_or_insert(1);
    probe.period_seconds.get_or_insert(10);
    probe.success_threshold.get_or_insert(1);
    probe.failure_threshold.get_or_insert(3);
    if let Some(http) = probe.http_get.as_mut() {
        http.path.get_or_insert_with(|| "/".into());
        http.scheme.get_or_insert_with(|| "HTTP".into());
    }
}

/// `SetDefaults_Volume` and the volume sources' mode defaults (0644, written in decimal).
fn volume(volume: &mut Volume) {
    const DEFAULT_MODE: i32 = 0o644;
    // Volume has some thirty optional sources; counting the keys its JSON form has beyond
    // `name` finds "no source" without listing them all.
    let has_source = serde_json::to_value(&*volume)
        .ok()
        .and_then(|v| v.as_object().map(|m| m.len() > 1))
        .unwrap_or(true);
    if !has_source {
        volume.empty_dir = Some(Default::default());
    }
    if let Some(secret) = volume.secret.as_mut() {
        secret.default_mode.get_or_insert(DEFAULT_MODE);
    }
    if let Some(config_map) = volume.config_map.as_mut() {
        config_map.default_mode.get_or_insert(DEFAULT_MODE);
    }
    if let Some(downward) = volume.downward_api.as_mut() {
        downward.default_mode.get_or_insert(DEFAULT_MODE);
    }
    if let Some(projected) = volume.projected.as_mut() {
        projected.default_mode.get_or_insert(DEFAULT_MODE);
    }
}

#[cfg(test)]
mod tests {
    use super::image_tag;

    #[test]
    fn image_tags_as_upstream_parses_them() {
        let cases = [
            ("nginx", Some("latest")),
            ("nginx:latest", Some("latest")),
            ("nginx:1.27", Some("1.27")),
            ("registry:5000/team/app", Some("latest")),
            ("registry:5000/team/app:v2", Some("v2")),
            ("app@sha256:abcd", None),
            ("app:v1@sha256:abcd", Some("v1")),
            ("", Some("latest")),
        ];
        for (image, want) in cases {
            assert_eq!(image_tag(image), want, "{image}");
        }
    }
}
