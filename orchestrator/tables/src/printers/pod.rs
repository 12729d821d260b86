//! The pod row: READY counts, the STATUS reason that summarises init containers, sidecars
//! and container states, and RESTARTS with the time of the last restart.

use std::time::SystemTime;

use serde_json::{Value, json};

use crate::access::{
    at, bool_at, created, int_at, list_at, name, object_at, opt_str_at, or, str_at,
};
use crate::time::{ZERO_TIME, age_since, elapsed_text, parse_rfc3339};

/// The kubelet's reason for pods on a node that stopped reporting.
const NODE_UNREACHABLE_REASON: &str = "NodeLost";

pub(super) fn cells(pod: &Value, now: SystemTime) -> Vec<Value> {
    let status = Summary::of(pod);
    let restarts = if status.restarts != 0 && status.last_restart != ZERO_TIME {
        format!(
            "{} ({} ago)",
            status.restarts,
            elapsed_text(status.last_restart, now)
        )
    } else {
        status.restarts.to_string()
    };
    vec![
        name(pod).into(),
        format!("{}/{}", status.ready, status.total).into(),
        status.reason.into(),
        restarts.into(),
        age_since(created(pod), now).into(),
        or(pod_ip(pod), "<none>").into(),
        or(str_at(pod, &["spec", "nodeName"]), "<none>").into(),
        or(str_at(pod, &["status", "nominatedNodeName"]), "<none>").into(),
        readiness_gates(pod).into(),
    ]
}

pub(super) fn row_conditions(pod: &Value) -> Option<Value> {
    let (reason, message) = match str_at(pod, &["status", "phase"]) {
        "Succeeded" => ("Succeeded", "The pod has completed successfully."),
        "Failed" => ("Failed", "The pod failed."),
        _ => return None,
    };
    Some(json!([{"type": "Completed", "status": "True", "reason": reason, "message": message}]))
}

/// What the READY, STATUS and RESTARTS cells are computed from.
struct Summary {
    ready: i64,
    total: i64,
    reason: String,
    restarts: i64,
    /// When a container last terminated before restarting; [`ZERO_TIME`] if never.
    last_restart: i128,
}

impl Summary {
    fn of(pod: &Value) -> Self {
        let phase = str_at(pod, &["status", "phase"]);
        let mut reason = or(str_at(pod, &["status", "reason"]), phase).to_owned();
        let conditions = list_at(pod, &["status", "conditions"]);
        if conditions.iter().any(|c| {
            str_at(c, &["type"]) == "PodScheduled" && str_at(c, &["reason"]) == "SchedulingGated"
        }) {
            reason = "SchedulingGated".to_owned();
        }

        let init_specs = list_at(pod, &["spec", "initContainers"]);
        let sidecars = init_specs.iter().filter(|c| is_sidecar(Some(c))).count();
        let mut summary = Self {
            ready: 0,
            total: count(list_at(pod, &["spec", "containers"]).len())
                .saturating_add(count(sidecars)),
            reason,
            restarts: 0,
            last_restart: ZERO_TIME,
        };

        let mut sidecar_restarts: i64 = 0;
        let mut sidecar_last_restart = ZERO_TIME;
        let mut initializing = false;
        for (index, status) in list_at(pod, &["status", "initContainerStatuses"])
            .iter()
            .enumerate()
        {
            let restart_count = int_at(status, &["restartCount"]);
            summary.restarts = summary.restarts.saturating_add(restart_count);
            let finished = last_finished(status);
            summary.last_restart = summary.last_restart.max(finished);
            // Like upstream's map keyed by name: a later spec with the same name wins.
            let spec = init_specs
                .iter()
                .rev()
                .find(|c| str_at(c, &["name"]) == str_at(status, &["name"]));
            let sidecar = is_sidecar(spec);
            if sidecar {
                sidecar_restarts = sidecar_restarts.saturating_add(restart_count);
                sidecar_last_restart = sidecar_last_restart.max(finished);
            }

            let terminated = object_at(status, &["state", "terminated"]);
            let waiting_reason =
                object_at(status, &["state", "waiting"]).map(|w| str_at(w, &["reason"]));
            if terminated.is_some_and(|t| int_at(t, &["exitCode"]) == 0) {
                continue;
            }
            if sidecar && bool_at(status, &["started"]) {
                if bool_at(status, &["ready"]) {
                    summary.ready += 1;
                }
                continue;
            }
            summary.reason = if let Some(terminated) = terminated {
                format!("Init:{}", termination_reason(terminated))
            } else if let Some(waiting) =
                waiting_reason.filter(|r| !r.is_empty() && *r != "PodInitializing")
            {
                format!("Init:{waiting}")
            } else {
                format!("Init:{index}/{}", init_specs.len())
            };
            initializing = true;
            break;
        }

        let initialized = conditions
            .iter()
            .find(|c| str_at(c, &["type"]) == "Initialized")
            .is_some_and(|c| str_at(c, &["status"]) == "True");
        if !initializing || initialized {
            summary.restarts = sidecar_restarts;
            summary.last_restart = sidecar_last_restart;
            let mut has_running = false;
            // Upstream walks the statuses backwards, so the first container's state wins.
            for status in list_at(pod, &["status", "containerStatuses"]).iter().rev() {
                summary.restarts = summary
                    .restarts
                    .saturating_add(int_at(status, &["restartCount"]));
                summary.last_restart = summary.last_restart.max(last_finished(status));
                let waiting =
                    object_at(status, &["state", "waiting"]).map(|w| str_at(w, &["reason"]));
                let terminated = object_at(status, &["state", "terminated"]);
                if let Some(waiting) = waiting.filter(|r| !r.is_empty()) {
                    waiting.clone_into(&mut summary.reason);
                } else if let Some(terminated) = terminated {
                    summary.reason = termination_reason(terminated);
                } else if bool_at(status, &["ready"])
                    && object_at(status, &["state", "running"]).is_some()
                {
                    has_running = true;
                    summary.ready += 1;
                }
            }
            if summary.reason == "Completed" && has_running {
                let ready = conditions
                    .iter()
                    .any(|c| str_at(c, &["type"]) == "Ready" && str_at(c, &["status"]) == "True");
                summary.reason = if ready { "Running" } else { "NotReady" }.to_owned();
            }
        }

        if object_deleted(pod) {
            if str_at(pod, &["status", "reason"]) == NODE_UNREACHABLE_REASON {
                summary.reason = "Unknown".to_owned();
            } else if phase != "Succeeded" && phase != "Failed" {
                summary.reason = "Terminating".to_owned();
            }
        }
        summary
    }
}

/// A restartable init container ("sidecar") has `restartPolicy: Always`.
fn is_sidecar(spec: Option<&Value>) -> bool {
    spec.is_some_and(|c| str_at(c, &["restartPolicy"]) == "Always")
}

/// The terminated state's reason, else its signal or exit code.
fn termination_reason(terminated: &Value) -> String {
    let reason = str_at(terminated, &["reason"]);
    if !reason.is_empty() {
        return reason.to_owned();
    }
    match int_at(terminated, &["signal"]) {
        0 => format!("ExitCode:{}", int_at(terminated, &["exitCode"])),
        signal => format!("Signal:{signal}"),
    }
}

/// When the previous run of this container ended, if it ended.
fn last_finished(status: &Value) -> i128 {
    object_at(status, &["lastState", "terminated"])
        .and_then(|t| opt_str_at(t, &["finishedAt"]))
        .and_then(parse_rfc3339)
        .unwrap_or(ZERO_TIME)
}

fn object_deleted(pod: &Value) -> bool {
    at(pod, &["metadata", "deletionTimestamp"]).is_some()
}

/// The primary IP; `podIP` wins over `podIPs`, as in the v1 to internal conversion.
fn pod_ip(pod: &Value) -> &str {
    let single = str_at(pod, &["status", "podIP"]);
    if single.is_empty() {
        list_at(pod, &["status", "podIPs"])
            .first()
            .map_or("", |ip| str_at(ip, &["ip"]))
    } else {
        single
    }
}

/// `true/total` readiness gates, counting the first condition of each gate's type.
fn readiness_gates(pod: &Value) -> String {
    let gates = list_at(pod, &["spec", "readinessGates"]);
    if gates.is_empty() {
        return "<none>".to_owned();
    }
    let conditions = list_at(pod, &["status", "conditions"]);
    let satisfied = gates
        .iter()
        .filter(|gate| {
            let wanted = str_at(gate, &["conditionType"]);
            conditions
                .iter()
                .find(|c| str_at(c, &["type"]) == wanted)
                .is_some_and(|c| str_at(c, &["status"]) == "True")
        })
        .count();
    format!("{satisfied}/{}", gates.len())
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
