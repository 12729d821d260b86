//! What the agent knows about a pod's containers, and the pod status Kubernetes derives
//! from it: each container's state and last state, the phase, and the Initialized,
//! ContainersReady and Ready conditions, as the kubelet computes them. No IO.

use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, Pod, PodCondition, PodIP,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// How a container's process ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Terminated {
    /// Exit code (128 + signal when killed).
    pub exit_code: i32,
    /// `Completed`, `Error`, `OOMKilled`, `ContainerStatusUnknown`.
    pub reason: String,
    /// The termination message, if any.
    pub message: Option<String>,
    /// When the process started.
    pub started_at: Option<SystemTime>,
    /// When it ended.
    pub finished_at: SystemTime,
    /// The runtime's id for it (`containerd://…`).
    pub container_id: String,
}

impl Terminated {
    /// The reason for an exit code, with an OOM kill taking precedence.
    pub fn reason_for(exit_code: i32, oom: bool) -> &'static str {
        if oom {
            "OOMKilled"
        } else if exit_code == 0 {
            "Completed"
        } else {
            "Error"
        }
    }
}

/// Where a container stands now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    /// Not running: being created, backing off, or blocked (`reason`, `message`).
    Waiting {
        /// `ContainerCreating`, `PodInitializing`, `CrashLoopBackOff`, `ErrImageNeverPull`,
        /// `CreateContainerConfigError`, `RunContainerError`, ...
        reason: String,
        /// Details, if any.
        message: Option<String>,
    },
    /// Its process runs.
    Running {
        /// When it started.
        started_at: SystemTime,
        /// The runtime's id for it.
        container_id: String,
    },
    /// Its process ended and it will not be restarted (or not yet).
    Terminated(Terminated),
}

/// One container of the pod, as the agent tracks it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The container's name.
    pub name: String,
    /// The image as the pod names it.
    pub image: String,
    /// The image's digest once known.
    pub image_id: String,
    /// Now.
    pub state: State,
    /// The previous run's end.
    pub last: Option<Terminated>,
    /// Restarts so far.
    pub restart_count: i32,
    /// Readiness (probe-driven; true when running without a readiness probe).
    pub ready: bool,
    /// The startup probe passed (true when running without one).
    pub started: bool,
}

impl Record {
    /// A container not yet started.
    pub fn waiting(name: &str, image: &str, reason: &str) -> Self {
        Record {
            name: name.to_owned(),
            image: image.to_owned(),
            image_id: String::new(),
            state: State::Waiting {
                reason: reason.to_owned(),
                message: None,
            },
            last: None,
            restart_count: 0,
            ready: false,
            started: false,
        }
    }

    /// Whether its process runs.
    pub fn running(&self) -> bool {
        matches!(self.state, State::Running { .. })
    }

    /// Whether it ended with exit code 0.
    pub fn succeeded(&self) -> bool {
        matches!(&self.state, State::Terminated(t) if t.exit_code == 0)
    }

    /// Whether it ended and its last run failed.
    pub fn failed(&self) -> bool {
        matches!(&self.state, State::Terminated(t) if t.exit_code != 0)
    }

    /// The Kubernetes ContainerStatus.
    pub fn to_status(&self) -> ContainerStatus {
        ContainerStatus {
            name: self.name.clone(),
            image: self.image.clone(),
            image_id: self.image_id.clone(),
            container_id: match &self.state {
                State::Running { container_id, .. } => Some(container_id.clone()),
                State::Terminated(t) => Some(t.container_id.clone()),
                State::Waiting { .. } => None,
            },
            state: Some(state(&self.state)),
            last_state: Some(
                self.last
                    .as_ref()
                    .map(|t| state(&State::Terminated(t.clone())))
                    .unwrap_or_default(),
            ),
            ready: self.ready,
            restart_count: self.restart_count,
            started: Some(self.started),
            ..ContainerStatus::default()
        }
    }
}

fn time(at: SystemTime) -> Time {
    let since = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    let seconds = i64::try_from(since.as_secs()).unwrap_or(i64::MAX);
    Time(k8s_openapi::jiff::Timestamp::from_second(seconds).unwrap_or_default())
}

fn state(state: &State) -> ContainerState {
    match state {
        State::Waiting { reason, message } => ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.clone()),
                message: message.clone(),
            }),
            ..ContainerState::default()
        },
        State::Running { started_at, .. } => ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(time(*started_at)),
            }),
            ..ContainerState::default()
        },
        State::Terminated(t) => ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: t.exit_code,
                reason: Some(t.reason.clone()),
                message: t.message.clone(),
                started_at: t.started_at.map(time),
                finished_at: Some(time(t.finished_at)),
                container_id: Some(t.container_id.clone()),
                signal: None,
            }),
            ..ContainerState::default()
        },
    }
}

/// The pod's phase from its containers, as the kubelet's `getPhase`.
pub fn phase(restart_policy: &str, init: &[Record], containers: &[Record]) -> &'static str {
    for record in init {
        if record.succeeded() {
            continue;
        }
        if record.failed() && restart_policy == "Never" {
            return "Failed";
        }
        return "Pending";
    }
    let running = containers.iter().filter(|c| c.running()).count();
    let succeeded = containers.iter().filter(|c| c.succeeded()).count();
    let failed = containers.iter().filter(|c| c.failed()).count();
    let waiting = containers.len() - running - succeeded - failed;
    // A container waiting to restart after having run counts as running.
    let restarting = containers
        .iter()
        .filter(|c| matches!(c.state, State::Waiting { .. }) && c.last.is_some())
        .count();
    if waiting > restarting {
        return "Pending";
    }
    if running + restarting > 0 {
        return "Running";
    }
    if containers.is_empty() {
        return "Pending";
    }
    match restart_policy {
        "Always" => "Running",
        _ if failed > 0 && restart_policy == "Never" => "Failed",
        _ if failed > 0 => "Running",
        _ => "Succeeded",
    }
}

/// Everything the agent reports about a pod.
#[derive(Clone, Debug, PartialEq)]
pub struct Report<'a> {
    /// The pod as last read (for its PodScheduled condition and readiness gates).
    pub pod: &'a Pod,
    /// Init containers in order.
    pub init: &'a [Record],
    /// App containers in order.
    pub containers: &'a [Record],
    /// The pod's address.
    pub pod_ip: Option<&'a str>,
    /// The node's address.
    pub host_ip: &'a str,
    /// When the agent first took the pod on.
    pub start_time: SystemTime,
    /// A pod-level failure (`reason`, `message`).
    pub failure: Option<(&'a str, &'a str)>,
}

/// The pod status as a JSON merge patch body for `pods/status`.
pub fn status(report: &Report<'_>, now: SystemTime) -> serde_json::Value {
    let pod_status = report.pod.status.clone().unwrap_or_default();
    let spec = report.pod.spec.clone().unwrap_or_default();
    let restart_policy = spec.restart_policy.as_deref().unwrap_or("Always");
    let phase = match report.failure {
        Some(_) => "Failed",
        None => phase(restart_policy, report.init, report.containers),
    };
    let initialized = report.init.iter().all(Record::succeeded);
    let containers_ready =
        !report.containers.is_empty() && report.containers.iter().all(|c| c.ready);
    let gates_pass = spec.readiness_gates.iter().flatten().all(|gate| {
        pod_status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == gate.condition_type && c.status == "True")
    });
    let old = pod_status.conditions.clone().unwrap_or_default();
    let condition = |kind: &str, ok: bool, reason: Option<String>, message: Option<String>| {
        let status = if ok { "True" } else { "False" };
        let previous = old.iter().find(|c| c.type_ == kind);
        let transition = match previous {
            Some(p) if p.status == status => p.last_transition_time.clone(),
            _ => Some(time(now)),
        };
        PodCondition {
            type_: kind.to_owned(),
            status: status.to_owned(),
            reason: if ok { None } else { reason },
            message: if ok { None } else { message },
            last_transition_time: transition,
            last_probe_time: None,
            ..PodCondition::default()
        }
    };
    let unready = |records: &[Record]| -> Option<String> {
        let names: Vec<&str> = records
            .iter()
            .filter(|c| !c.ready)
            .map(|c| c.name.as_str())
            .collect();
        (!names.is_empty())
            .then(|| format!("containers with unready status: [{}]", names.join(" ")))
    };
    let uninitialized: Vec<&str> = report
        .init
        .iter()
        .filter(|c| !c.succeeded())
        .map(|c| c.name.as_str())
        .collect();
    let not_ready_reason = if phase == "Succeeded" || phase == "Failed" {
        "PodCompleted"
    } else {
        "ContainersNotReady"
    };
    let mut conditions: Vec<PodCondition> = old
        .iter()
        .filter(|c| {
            !matches!(
                c.type_.as_str(),
                "Initialized" | "ContainersReady" | "Ready" | "PodReadyToStartContainers"
            )
        })
        .cloned()
        .collect();
    conditions.push(condition(
        "PodReadyToStartContainers",
        report.pod_ip.is_some(),
        None,
        None,
    ));
    conditions.push(condition(
        "Initialized",
        initialized,
        Some("ContainersNotInitialized".into()),
        Some(format!(
            "containers with incomplete status: [{}]",
            uninitialized.join(" ")
        )),
    ));
    conditions.push(condition(
        "ContainersReady",
        containers_ready,
        Some(not_ready_reason.into()),
        unready(report.containers),
    ));
    conditions.push(condition(
        "Ready",
        containers_ready && gates_pass,
        Some(not_ready_reason.into()),
        unready(report.containers),
    ));
    let mut body = serde_json::json!({
        "phase": phase,
        "conditions": conditions,
        "hostIP": report.host_ip,
        "hostIPs": [PodIP { ip: report.host_ip.to_owned() }],
        "startTime": time(report.start_time),
        "containerStatuses": report.containers.iter().map(Record::to_status).collect::<Vec<_>>(),
        "qosClass": qos_class(report.pod),
    });
    if !report.init.is_empty() {
        body["initContainerStatuses"] = serde_json::json!(
            report
                .init
                .iter()
                .map(Record::to_status)
                .collect::<Vec<_>>()
        );
    }
    if let Some(ip) = report.pod_ip {
        body["podIP"] = serde_json::json!(ip);
        body["podIPs"] = serde_json::json!([PodIP { ip: ip.to_owned() }]);
    }
    if let Some((reason, message)) = report.failure {
        body["reason"] = serde_json::json!(reason);
        body["message"] = serde_json::json!(message);
    }
    body
}

/// The pod's quality of service class, as Kubernetes' `GetPodQOS`.
pub fn qos_class(pod: &Pod) -> &'static str {
    let Some(spec) = &pod.spec else {
        return "BestEffort";
    };
    let containers: Vec<_> = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in &containers {
        let resources = c.resources.clone().unwrap_or_default();
        let requests = resources.requests.unwrap_or_default();
        let limits = resources.limits.unwrap_or_default();
        for name in ["cpu", "memory"] {
            let request = requests.get(name).or_else(|| limits.get(name));
            let limit = limits.get(name);
            if request.is_some() || limit.is_some() {
                any = true;
            }
            match (request, limit) {
                (Some(r), Some(l)) if quantity_eq(r, l) => {}
                _ => guaranteed = false,
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

fn quantity_eq(
    a: &k8s_openapi::apimachinery::pkg::api::resource::Quantity,
    b: &k8s_openapi::apimachinery::pkg::api::resource::Quantity,
) -> bool {
    use slipway_model::quantity::ParsedQuantity;
    match (ParsedQuantity::try_from(a), ParsedQuantity::try_from(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ended(code: i32) -> State {
        State::Terminated(Terminated {
            exit_code: code,
            reason: Terminated::reason_for(code, false).into(),
            message: None,
            started_at: None,
            finished_at: SystemTime::UNIX_EPOCH,
            container_id: "containerd://x".into(),
        })
    }

    fn record(state: State) -> Record {
        Record {
            state,
            ..Record::waiting("c", "busybox", "ContainerCreating")
        }
    }

    fn running() -> State {
        State::Running {
            started_at: SystemTime::UNIX_EPOCH,
            container_id: "containerd://x".into(),
        }
    }

    #[test]
    fn phases_follow_the_kubelet() {
        let waiting = record(State::Waiting {
            reason: "ContainerCreating".into(),
            message: None,
        });
        assert_eq!(
            phase("Always", &[], std::slice::from_ref(&waiting)),
            "Pending"
        );
        assert_eq!(phase("Always", &[], &[record(running())]), "Running");
        assert_eq!(phase("Never", &[], &[record(ended(0))]), "Succeeded");
        assert_eq!(
            phase("Never", &[], &[record(ended(1)), record(ended(0))]),
            "Failed"
        );
        assert_eq!(phase("OnFailure", &[], &[record(ended(0))]), "Succeeded");
        assert_eq!(
            phase("Never", &[record(ended(1))], std::slice::from_ref(&waiting)),
            "Failed"
        );
        assert_eq!(
            phase(
                "Always",
                &[record(ended(1))],
                std::slice::from_ref(&waiting)
            ),
            "Pending"
        );
        assert_eq!(
            phase("Always", &[record(ended(0))], &[record(running())]),
            "Running"
        );
        let mut crashing = record(State::Waiting {
            reason: "CrashLoopBackOff".into(),
            message: None,
        });
        crashing.last = match ended(1) {
            State::Terminated(t) => Some(t),
            _ => None,
        };
        assert_eq!(phase("Always", &[], &[crashing]), "Running");
    }

    #[test]
    fn ready_needs_every_container_ready() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"conditions": [{"type": "PodScheduled", "status": "True"}]},
        }))
        .expect("pod");
        let mut a = record(running());
        a.name = "a".into();
        a.ready = true;
        let mut b = record(running());
        b.name = "b".into();
        let containers = [a, b];
        let report = Report {
            pod: &pod,
            init: &[],
            containers: &containers,
            pod_ip: Some("127.64.0.2"),
            host_ip: "127.0.0.1",
            start_time: SystemTime::UNIX_EPOCH,
            failure: None,
        };
        let body = status(&report, SystemTime::UNIX_EPOCH);
        assert_eq!(body["phase"], "Running");
        let conditions = body["conditions"].as_array().cloned().unwrap_or_default();
        let ready = conditions.iter().find(|c| c["type"] == "Ready").cloned();
        assert_eq!(
            ready.as_ref().map(|c| c["status"].clone()),
            Some("False".into())
        );
        assert_eq!(
            ready.map(|c| c["message"].clone()),
            Some("containers with unready status: [b]".into())
        );
        assert!(conditions.iter().any(|c| c["type"] == "PodScheduled"));
        assert_eq!(body["podIP"], "127.64.0.2");
        assert_eq!(body["qosClass"], "BestEffort");
    }

    #[test]
    fn qos_classes() {
        let pod = |resources: serde_json::Value| -> Pod {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "p"},
                "spec": {"containers": [{"name": "a", "resources": resources}]},
            }))
            .expect("pod")
        };
        assert_eq!(qos_class(&pod(serde_json::json!({}))), "BestEffort");
        assert_eq!(
            qos_class(&pod(
                serde_json::json!({"limits": {"cpu": "1", "memory": "1Gi"}})
            )),
            "Guaranteed"
        );
        assert_eq!(
            qos_class(&pod(serde_json::json!({"requests": {"cpu": "100m"}}))),
            "Burstable"
        );
    }
}
