//! `slipway describe`: one object for people: its metadata, the spec and status fields that
//! matter for pods, deployments, services, nodes and namespaces (spec and status as YAML
//! for other kinds), its conditions, and the events about it.

use std::fmt::Write as _;

use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ListParams};
use serde_json::Value;

use super::resolve::Catalog;
use super::target::Target;
use super::{api_failure, kind_and_names, print};
use crate::exit::Failure;

/// Show an object in detail, with the events about it.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  slipway describe pod web-7d4b9c-x2x8q\n  \
    slipway describe deployment/web\n  slipway describe node node-1")]
pub(crate) struct DescribeArgs {
    /// KIND NAME... or KIND/NAME...
    #[arg(required = true, value_name = "KIND NAME")]
    what: Vec<String>,
    #[command(flatten)]
    target: Target,
}

pub(crate) async fn describe(args: DescribeArgs) -> Result<(), Failure> {
    let pairs = kind_and_names(&args.what)?;
    let session = args.target.connect()?;
    let catalog = Catalog::load(&session.client).await?;
    let mut objects = Vec::new();
    for (word, name) in &pairs {
        let kind = catalog.find(word)?;
        let Some(name) = name else {
            return Err(Failure::bad_input(format!(
                "{word}: name the object to describe"
            )));
        };
        let object = kind
            .api(&session.client, Some(&session.namespace))
            .get(name)
            .await
            .map_err(api_failure)?;
        let object = serde_json::to_value(object)
            .map_err(|e| Failure::failed(format!("cannot encode the object: {e}")))?;
        objects.push((kind.resource.kind.clone(), object));
    }
    let now = jiff::Timestamp::now();
    for (i, (kind, object)) in objects.iter().enumerate() {
        let mut events = events(&session.client, object).await?;
        events.sort_by_key(when);
        if i > 0 {
            say!();
        }
        print(&render(kind, object, events, now));
    }
    Ok(())
}

/// The events about `object`, asked of the server by name, namespace and uid as kubectl
/// asks: in the object's namespace, or in any for a cluster-scoped one.
async fn events(client: &kube::Client, object: &Value) -> Result<Vec<Event>, Failure> {
    let metadata = &object["metadata"];
    let field = |key: &str| metadata[key].as_str().unwrap_or_default();
    let mut selector = format!(
        "involvedObject.name={},involvedObject.uid={}",
        field("name"),
        field("uid")
    );
    let events: Api<Event> = match metadata["namespace"].as_str() {
        Some(namespace) => {
            selector.push_str(&format!(",involvedObject.namespace={namespace}"));
            Api::namespaced(client.clone(), namespace)
        }
        None => Api::all(client.clone()),
    };
    Ok(events
        .list(&ListParams::default().fields(&selector))
        .await
        .map_err(api_failure)?
        .items)
}

/// Lines of `key: value`, values aligned within a block.
#[derive(Default)]
struct Text {
    out: String,
}

impl Text {
    fn field(&mut self, indent: usize, key: &str, value: impl std::fmt::Display) {
        let key = format!("{key}:");
        let _ = writeln!(
            self.out,
            "{:indent$}{key:<width$}{value}",
            "",
            width = 20_usize.saturating_sub(indent).max(key.len() + 1)
        );
    }

    fn line(&mut self, indent: usize, text: &str) {
        let _ = writeln!(self.out, "{:indent$}{text}", "");
    }

    /// A map of strings as `k=v` lines under `key`, `<none>` when empty.
    fn map(&mut self, indent: usize, key: &str, value: &Value, separator: &str) {
        let entries: Vec<String> = value
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| {
                format!(
                    "{k}{separator}{}",
                    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
                )
            })
            .collect();
        match entries.split_first() {
            None => self.field(indent, key, "<none>"),
            Some((first, rest)) => {
                self.field(indent, key, first);
                let width = 20_usize.max(indent + key.len() + 2);
                for entry in rest {
                    self.line(width, entry);
                }
            }
        }
    }

    /// A value as indented YAML under `key`.
    fn yaml(&mut self, indent: usize, key: &str, value: &Value) {
        if value.is_null() {
            return;
        }
        self.line(indent, &format!("{key}:"));
        let yaml = serde_yaml_ng::to_string(value).unwrap_or_default();
        for line in yaml.lines() {
            self.line(indent + 2, line);
        }
    }
}

fn render(kind: &str, object: &Value, events: Vec<Event>, now: jiff::Timestamp) -> String {
    let mut t = Text::default();
    let metadata = &object["metadata"];
    t.field(0, "Name", super::or_none(&metadata["name"]));
    if metadata["namespace"].is_string() {
        t.field(0, "Namespace", super::or_none(&metadata["namespace"]));
    }
    t.map(0, "Labels", &metadata["labels"], "=");
    t.map(0, "Annotations", &metadata["annotations"], ": ");
    t.field(
        0,
        "CreationTimestamp",
        super::or_none(&metadata["creationTimestamp"]),
    );
    if !metadata["deletionTimestamp"].is_null() {
        t.field(
            0,
            "DeletionTimestamp",
            super::or_none(&metadata["deletionTimestamp"]),
        );
    }
    let spec = &object["spec"];
    let status = &object["status"];
    match kind {
        "Pod" => pod(&mut t, spec, status),
        "Deployment" => deployment(&mut t, spec, status),
        "Service" => service(&mut t, spec),
        "Node" => node(&mut t, spec, status),
        "Namespace" => t.field(0, "Status", super::or_none(&status["phase"])),
        _ => {
            t.yaml(0, "Spec", spec);
            t.yaml(0, "Status", status);
            for (key, value) in object.as_object().into_iter().flatten() {
                if !matches!(
                    key.as_str(),
                    "apiVersion" | "kind" | "metadata" | "spec" | "status"
                ) {
                    t.yaml(0, &capitalized(key), value);
                }
            }
        }
    }
    if kind != "Namespace" {
        conditions(&mut t, status);
    }
    events_of(&mut t, events, now);
    t.out
}

fn capitalized(key: &str) -> String {
    let mut chars = key.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

fn pod(t: &mut Text, spec: &Value, status: &Value) {
    t.field(
        0,
        "Service Account",
        super::or_none(&spec["serviceAccountName"]),
    );
    t.field(0, "Node", super::or_none(&spec["nodeName"]));
    t.field(0, "Status", super::or_none(&status["phase"]));
    if !status["reason"].is_null() {
        t.field(0, "Reason", super::or_none(&status["reason"]));
    }
    t.field(0, "IP", super::or_none(&status["podIP"]));
    let states: Vec<Value> = status["containerStatuses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for (key, list) in [
        ("Init Containers", "initContainers"),
        ("Containers", "containers"),
    ] {
        let Some(containers) = spec[list].as_array() else {
            continue;
        };
        t.line(0, &format!("{key}:"));
        for container in containers {
            let name = super::or_none(&container["name"]);
            t.line(2, &format!("{name}:"));
            t.field(4, "Image", super::or_none(&container["image"]));
            let ports = ports(container);
            if !ports.is_empty() {
                t.field(4, "Port", ports.join(", "));
            }
            if !container["command"].is_null() {
                t.field(4, "Command", super::or_none(&container["command"]));
            }
            if !container["args"].is_null() {
                t.field(4, "Args", super::or_none(&container["args"]));
            }
            if let Some(state) = states.iter().find(|s| s["name"] == container["name"]) {
                let (phase, detail) = state["state"]
                    .as_object()
                    .and_then(|s| s.iter().next())
                    .map_or(("Waiting", &Value::Null), |(k, v)| (k.as_str(), v));
                t.field(4, "State", capitalized(phase));
                for key in ["reason", "exitCode", "startedAt", "finishedAt"] {
                    if !detail[key].is_null() {
                        t.field(6, &capitalized(key), super::or_none(&detail[key]));
                    }
                }
                t.field(4, "Ready", super::or_none(&state["ready"]));
                t.field(4, "Restart Count", super::or_none(&state["restartCount"]));
            }
            for key in ["limits", "requests"] {
                if !container["resources"][key].is_null() {
                    t.map(4, &capitalized(key), &container["resources"][key], ": ");
                }
            }
        }
    }
}

/// A container's ports as kubectl describes them: `8080/TCP`, the protocol TCP unless
/// given.
fn ports(container: &Value) -> Vec<String> {
    container["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            format!(
                "{}/{}",
                super::or_none(&p["containerPort"]),
                p["protocol"].as_str().unwrap_or("TCP")
            )
        })
        .collect()
}

fn deployment(t: &mut Text, spec: &Value, status: &Value) {
    t.map(0, "Selector", &spec["selector"]["matchLabels"], "=");
    let count = |key: &str| status[key].as_i64().unwrap_or(0);
    t.field(
        0,
        "Replicas",
        format!(
            "{} desired | {} updated | {} total | {} available | {} unavailable",
            spec["replicas"].as_i64().unwrap_or(1),
            count("updatedReplicas"),
            count("replicas"),
            count("availableReplicas"),
            count("unavailableReplicas"),
        ),
    );
    t.field(0, "StrategyType", super::or_none(&spec["strategy"]["type"]));
    pod_template_into(t, &spec["template"]);
}

/// A pod template as `describe deployment` and `rollout history --revision` show it:
/// labels, and each container's image, ports and environment.
pub(super) fn pod_template(template: &Value) -> String {
    let mut t = Text::default();
    pod_template_into(&mut t, template);
    t.out
}

fn pod_template_into(t: &mut Text, template: &Value) {
    t.line(0, "Pod Template:");
    t.map(2, "Labels", &template["metadata"]["labels"], "=");
    t.line(2, "Containers:");
    for container in template["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
    {
        t.line(4, &format!("{}:", super::or_none(&container["name"])));
        t.field(6, "Image", super::or_none(&container["image"]));
        let ports = ports(container);
        t.field(
            6,
            "Port",
            if ports.is_empty() {
                "<none>".to_owned()
            } else {
                ports.join(", ")
            },
        );
        let env: Vec<String> = container["env"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| format!("{}: {}", super::or_none(&e["name"]), env_value(e)))
            .collect();
        match env.split_first() {
            None => t.field(6, "Environment", "<none>"),
            Some((first, rest)) => {
                t.field(6, "Environment", first);
                for line in rest {
                    t.line(20, line);
                }
            }
        }
    }
}

/// An environment variable's value as kubectl describes it: the value, or where it comes
/// from.
fn env_value(var: &Value) -> String {
    let from = &var["valueFrom"];
    if from.is_null() {
        return var["value"].as_str().unwrap_or_default().to_owned();
    }
    let key = |source: &str, kind: &str| {
        format!(
            "<set to the key '{}' in {kind} '{}'>",
            super::or_none(&from[source]["key"]),
            super::or_none(&from[source]["name"])
        )
    };
    if !from["configMapKeyRef"].is_null() {
        key("configMapKeyRef", "config map")
    } else if !from["secretKeyRef"].is_null() {
        key("secretKeyRef", "secret")
    } else if !from["fieldRef"].is_null() {
        format!(
            "({}:{})",
            from["fieldRef"]["apiVersion"].as_str().unwrap_or("v1"),
            super::or_none(&from["fieldRef"]["fieldPath"])
        )
    } else if !from["resourceFieldRef"].is_null() {
        format!(
            "{} of {}",
            super::or_none(&from["resourceFieldRef"]["resource"]),
            super::or_none(&from["resourceFieldRef"]["containerName"])
        )
    } else {
        "<set from valueFrom>".to_owned()
    }
}

fn service(t: &mut Text, spec: &Value) {
    t.map(0, "Selector", &spec["selector"], "=");
    t.field(0, "Type", super::or_none(&spec["type"]));
    t.field(0, "IP", super::or_none(&spec["clusterIP"]));
    for port in spec["ports"].as_array().into_iter().flatten() {
        let name = port["name"]
            .as_str()
            .filter(|n| !n.is_empty())
            .unwrap_or("<unset>");
        let protocol = port["protocol"].as_str().unwrap_or("TCP");
        t.field(
            0,
            "Port",
            format!("{name}  {}/{protocol}", super::or_none(&port["port"])),
        );
        t.field(
            0,
            "TargetPort",
            format!("{}/{protocol}", super::or_none(&port["targetPort"])),
        );
        if !port["nodePort"].is_null() {
            t.field(
                0,
                "NodePort",
                format!("{name}  {}/{protocol}", super::or_none(&port["nodePort"])),
            );
        }
    }
}

fn node(t: &mut Text, spec: &Value, status: &Value) {
    t.field(0, "PodCIDR", super::or_none(&spec["podCIDR"]));
    t.field(
        0,
        "Unschedulable",
        spec["unschedulable"].as_bool().unwrap_or(false),
    );
    t.line(0, "Addresses:");
    for address in status["addresses"].as_array().into_iter().flatten() {
        t.field(
            2,
            &super::or_none(&address["type"]),
            super::or_none(&address["address"]),
        );
    }
    t.map(0, "Capacity", &status["capacity"], ": ");
    t.map(0, "Allocatable", &status["allocatable"], ": ");
    t.line(0, "System Info:");
    for (key, value) in status["nodeInfo"].as_object().into_iter().flatten() {
        t.field(2, &capitalized(key), super::or_none(value));
    }
}

fn conditions(t: &mut Text, status: &Value) {
    let Some(conditions) = status["conditions"].as_array().filter(|c| !c.is_empty()) else {
        return;
    };
    t.line(0, "Conditions:");
    let rows: Vec<[String; 3]> = conditions
        .iter()
        .map(|c| {
            [
                super::or_none(&c["type"]),
                super::or_none(&c["status"]),
                super::or_none(&c["reason"]),
            ]
        })
        .collect();
    table(t, &["Type", "Status", "Reason"], &rows);
}

/// The events, oldest first.
fn events_of(t: &mut Text, events: Vec<Event>, now: jiff::Timestamp) {
    if events.is_empty() {
        t.field(0, "Events", "<none>");
        return;
    }
    t.line(0, "Events:");
    let rows: Vec<[String; 5]> = events
        .iter()
        .map(|e| {
            let age = when(e).map_or_else(|| "<unknown>".to_owned(), |at| age(at, now));
            let age = match e.count {
                Some(count) if count > 1 => format!("{age} (x{count})"),
                _ => age,
            };
            [
                e.type_.clone().unwrap_or_default(),
                e.reason.clone().unwrap_or_default(),
                age,
                e.source
                    .as_ref()
                    .and_then(|s| s.component.clone())
                    .or_else(|| e.reporting_component.clone())
                    .unwrap_or_default(),
                e.message.clone().unwrap_or_default().trim().to_owned(),
            ]
        })
        .collect();
    table(t, &["Type", "Reason", "Age", "From", "Message"], &rows);
}

/// When an event last happened.
fn when(event: &Event) -> Option<jiff::Timestamp> {
    event
        .last_timestamp
        .as_ref()
        .map(|t| t.0)
        .or_else(|| event.event_time.as_ref().map(|t| t.0))
        .or_else(|| event.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// How long ago `at` was, as kubectl shortens it: `45s`, `5m30s`, `90m`, `5h10m`, `3d4h`.
fn age(at: jiff::Timestamp, now: jiff::Timestamp) -> String {
    crate::platform::human(now.as_second().saturating_sub(at.as_second()).max(0))
}

/// An indented table under a dashed header, as kubectl's describe prints one.
fn table<const N: usize>(t: &mut Text, headers: &[&str; N], rows: &[[String; N]]) {
    let mut all = vec![
        headers.iter().map(|&h| h.to_owned()).collect(),
        headers.iter().map(|h| "-".repeat(h.len())).collect(),
    ];
    all.extend(rows.iter().map(|row| row.to_vec()));
    for line in crate::columns::align(&all, "  ") {
        t.line(2, &line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_default_to_tcp() {
        let container = serde_json::json!({"ports": [
            {"containerPort": 8080}, {"containerPort": 53, "protocol": "UDP"}]});
        assert_eq!(ports(&container), ["8080/TCP", "53/UDP"]);
        assert!(ports(&serde_json::json!({})).is_empty());
    }

    #[test]
    fn a_service_reads_like_kubectls() {
        let object = serde_json::json!({
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
            "spec": {"type": "ClusterIP", "clusterIP": "127.100.0.7", "selector": {"app": "web"},
                     "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]},
        });
        let now = jiff::Timestamp::UNIX_EPOCH;
        let text = render("Service", &object, Vec::new(), now);
        for line in [
            "Name:               web",
            "Namespace:          default",
            "Labels:             app=web",
            "Annotations:        <none>",
            "Selector:           app=web",
            "IP:                 127.100.0.7",
            "Port:               <unset>  80/TCP",
            "TargetPort:         8080/TCP",
            "Events:             <none>",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} in\n{text}");
        }
    }

    #[test]
    fn ages_are_shortened_like_kubectls() {
        let at = jiff::Timestamp::UNIX_EPOCH;
        let later = |s: i64| jiff::Timestamp::from_second(s).unwrap();
        assert_eq!(age(at, later(45)), "45s");
        assert_eq!(age(at, later(330)), "5m30s");
        assert_eq!(age(at, later(5_400)), "90m");
        assert_eq!(age(at, later(4 * 86_400 + 3_600)), "4d1h");
        assert_eq!(age(later(10), at), "0s");
    }
}
