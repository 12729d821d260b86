//! What the pages compute from Kubernetes objects: ages, quota bars, a Deployment's row
//! and status colour, the URLs its Services and Ingresses expose, and event rows.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, ResourceQuota, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use slipway_model::quantity::ParsedQuantity;

/// How long ago `then` was, as kubectl prints ages (`45s`, `12m`, `3h`, `5d`).
pub(crate) fn age(now: Timestamp, then: Option<Timestamp>) -> String {
    let Some(then) = then else {
        return "-".to_owned();
    };
    span(now.as_second().saturating_sub(then.as_second()))
}

/// `seconds` as one unit, kubectl's way.
pub(crate) fn span(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..120 => format!("{s}s"),
        120..7_200 => format!("{}m", s / 60),
        7_200..172_800 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// What is left until `at`, for people: `3h 20m`, `45m`, `expired`.
pub(crate) fn remaining(now: Timestamp, at: Timestamp) -> String {
    let s = at.as_second().saturating_sub(now.as_second());
    if s <= 0 {
        return "expired".to_owned();
    }
    let (h, m) = (s / 3600, (s % 3600) / 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, m) => format!("{m}m"),
        (h, m) if h < 48 => format!("{h}h {m}m"),
        (h, _) => format!("{}d {}h", h / 24, h % 24),
    }
}

pub(crate) fn time(t: Option<&Time>) -> Option<Timestamp> {
    t.map(|t| t.0)
}

/// One quota bar: used of hard, as numbers and a share.
pub(crate) struct Bar {
    pub(crate) label: &'static str,
    pub(crate) used: String,
    pub(crate) hard: String,
    /// 0–100.
    pub(crate) percent: u32,
    /// `ok`, `warn` (over 80 %) or `bad` (full).
    pub(crate) level: &'static str,
}

impl Bar {
    pub(crate) fn new(label: &'static str, used: &str, hard: &str) -> Bar {
        let parse = |q: &str| ParsedQuantity::parse(q).map(|q| q.as_nanos()).ok();
        let percent = match (parse(used), parse(hard)) {
            (Some(u), Some(h)) if h > 0 => {
                u32::try_from((u.max(0) * 100 / h).min(100)).unwrap_or(100)
            }
            (Some(u), Some(_)) if u > 0 => 100,
            _ => 0,
        };
        let level = match percent {
            100.. => "bad",
            80.. => "warn",
            _ => "ok",
        };
        Bar {
            label,
            used: used.to_owned(),
            hard: hard.to_owned(),
            percent,
            level,
        }
    }
}

/// The bars of a ResourceQuota: cpu, memory and pods, as requested.
pub(crate) fn quota_bars(quota: &ResourceQuota) -> Vec<Bar> {
    let status = quota.status.as_ref();
    let value = |map: Option<
        &BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    >,
                 key: &str| { map.and_then(|m| m.get(key)).map(|q| q.0.clone()) };
    let hard = status
        .and_then(|s| s.hard.as_ref())
        .or(quota.spec.as_ref().and_then(|s| s.hard.as_ref()));
    let used = status.and_then(|s| s.used.as_ref());
    [
        ("cpu", ["requests.cpu", "cpu"]),
        ("memory", ["requests.memory", "memory"]),
        ("pods", ["pods", "count/pods"]),
    ]
    .into_iter()
    .filter_map(|(label, keys)| {
        let key = keys.into_iter().find(|k| value(hard, k).is_some())?;
        let hard = value(hard, key)?;
        let used = value(used, key).unwrap_or_else(|| "0".to_owned());
        Some(Bar::new(label, &used, &hard))
    })
    .collect()
}

/// A Deployment as a row of a services table.
pub(crate) struct DeploymentRow {
    pub(crate) namespace: String,
    pub(crate) name: String,
    pub(crate) image: String,
    pub(crate) ready: i32,
    pub(crate) desired: i32,
    pub(crate) age: String,
    /// `ok`, `warn`, `bad` or `idle`: the colour.
    pub(crate) level: &'static str,
    /// The colour in words, for those who cannot see it.
    pub(crate) state: &'static str,
    pub(crate) urls: Vec<String>,
}

pub(crate) fn deployment_row(d: &Deployment, now: Timestamp, urls: Vec<String>) -> DeploymentRow {
    let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let status = d.status.as_ref();
    let ready = status.and_then(|s| s.ready_replicas).unwrap_or(0);
    let stalled = status
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Progressing" && c.status == "False");
    let (level, state) = if desired == 0 {
        ("idle", "scaled to zero")
    } else if stalled || ready == 0 {
        ("bad", if stalled { "stalled" } else { "unavailable" })
    } else if ready < desired {
        ("warn", "rolling")
    } else {
        ("ok", "ready")
    };
    let image = d
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.clone())
        .unwrap_or_default();
    DeploymentRow {
        namespace: d.metadata.namespace.clone().unwrap_or_default(),
        name: d.metadata.name.clone().unwrap_or_default(),
        image,
        ready,
        desired,
        age: age(now, time(d.metadata.creation_timestamp.as_ref())),
        level,
        state,
        urls,
    }
}

/// Where the gateway serves Ingresses, for turning their rules into URLs.
pub(crate) struct Gateway {
    scheme: String,
    port: String,
    /// The base itself, for rules without a host.
    base: String,
}

impl Gateway {
    /// `http://127.0.0.1:8080` → scheme `http`, port `:8080`.
    pub(crate) fn parse(base: Option<&str>) -> Gateway {
        let base = base.unwrap_or("http://localhost").trim_end_matches('/');
        let (scheme, rest) = base.split_once("://").unwrap_or(("http", base));
        let authority = rest.split('/').next().unwrap_or(rest);
        let port = authority
            .rsplit_once(':')
            .filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()))
            .map(|(_, p)| format!(":{p}"))
            .unwrap_or_default();
        Gateway {
            scheme: scheme.to_owned(),
            port,
            base: format!("{scheme}://{authority}"),
        }
    }

    fn url(&self, host: Option<&str>, path: &str) -> String {
        match host {
            Some(host) => format!("{}://{host}{}{path}", self.scheme, self.port),
            None => format!("{}{path}", self.base),
        }
    }
}

/// The Services and Ingresses of one namespace, to find what exposes a Deployment.
pub(crate) struct Exposure<'a> {
    pub(crate) services: &'a [Service],
    pub(crate) ingresses: &'a [Ingress],
}

impl Exposure<'_> {
    /// The Services whose selector picks the Deployment's pods.
    pub(crate) fn services_of<'s>(&'s self, d: &Deployment) -> Vec<&'s Service> {
        let empty = BTreeMap::new();
        let labels = d
            .spec
            .as_ref()
            .and_then(|s| s.template.metadata.as_ref())
            .and_then(|m| m.labels.as_ref())
            .unwrap_or(&empty);
        self.services
            .iter()
            .filter(|s| {
                s.spec
                    .as_ref()
                    .and_then(|s| s.selector.as_ref())
                    .is_some_and(|sel| {
                        !sel.is_empty() && sel.iter().all(|(k, v)| labels.get(k) == Some(v))
                    })
            })
            .collect()
    }

    /// The gateway URLs of the Ingress rules whose backend is one of `services`.
    pub(crate) fn urls(&self, services: &[&Service], gateway: &Gateway) -> Vec<String> {
        let names: Vec<&str> = services
            .iter()
            .filter_map(|s| s.metadata.name.as_deref())
            .collect();
        let mut urls = Vec::new();
        for ingress in self.ingresses {
            let Some(spec) = ingress.spec.as_ref() else {
                continue;
            };
            for rule in spec.rules.iter().flatten() {
                let paths = rule
                    .http
                    .as_ref()
                    .map(|h| h.paths.as_slice())
                    .unwrap_or(&[]);
                for path in paths {
                    let backend = path.backend.service.as_ref().map(|s| s.name.as_str());
                    if backend.is_some_and(|b| names.contains(&b)) {
                        let p = path.path.as_deref().unwrap_or("/");
                        let url = gateway.url(rule.host.as_deref(), p);
                        if !urls.contains(&url) {
                            urls.push(url);
                        }
                    }
                }
            }
        }
        urls
    }
}

/// An event as a row.
pub(crate) struct EventRow {
    pub(crate) age: String,
    /// `Normal` or `Warning`.
    pub(crate) kind: String,
    pub(crate) reason: String,
    pub(crate) object: String,
    pub(crate) message: String,
    at: Option<Timestamp>,
}

/// The newest `limit` of `events` (those `keep` accepts) as rows.
pub(crate) fn event_rows(
    events: &[Event],
    now: Timestamp,
    limit: usize,
    keep: impl Fn(&Event) -> bool,
) -> Vec<EventRow> {
    let mut rows: Vec<EventRow> = events
        .iter()
        .filter(|e| keep(e))
        .map(|e| {
            let at = time(e.last_timestamp.as_ref())
                .or_else(|| e.event_time.as_ref().map(|t| t.0))
                .or_else(|| time(e.metadata.creation_timestamp.as_ref()));
            EventRow {
                age: age(now, at),
                kind: e.type_.clone().unwrap_or_else(|| "Normal".to_owned()),
                reason: e.reason.clone().unwrap_or_default(),
                object: format!(
                    "{}/{}",
                    e.involved_object
                        .kind
                        .as_deref()
                        .unwrap_or("")
                        .to_lowercase(),
                    e.involved_object.name.as_deref().unwrap_or("")
                ),
                message: e.message.clone().unwrap_or_default(),
                at,
            }
        })
        .collect();
    rows.sort_by_key(|row| std::cmp::Reverse(row.at));
    rows.truncate(limit);
    rows
}

/// The first 12 hex digits of a commit, as GitHub shows them.
pub(crate) fn short_sha(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

/// `ok`, `warn`, `bad` or `idle` for a preview's phase.
pub(crate) fn phase_level(phase: &str) -> &'static str {
    match phase {
        "ready" => "ok",
        "failed" => "bad",
        "sleeping" | "destroyed" => "idle",
        _ => "warn",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_as_kubectl_prints_them() {
        assert_eq!(span(45), "45s");
        assert_eq!(span(600), "10m");
        assert_eq!(span(3 * 3600), "3h");
        assert_eq!(span(5 * 86_400), "5d");
        assert_eq!(span(-3), "0s");
    }

    #[test]
    fn bars_compare_quantities_in_any_unit() {
        let bar = Bar::new("memory", "512Mi", "1Gi");
        assert_eq!((bar.percent, bar.level), (50, "ok"));
        let bar = Bar::new("cpu", "900m", "1");
        assert_eq!((bar.percent, bar.level), (90, "warn"));
        let bar = Bar::new("pods", "12", "10");
        assert_eq!((bar.percent, bar.level), (100, "bad"));
        assert_eq!(Bar::new("pods", "x", "10").percent, 0);
    }

    #[test]
    fn gateway_urls_keep_the_port() {
        let g = Gateway::parse(Some("http://127.0.0.1:8080/"));
        assert_eq!(
            g.url(Some("pr-web-1.preview.localhost"), "/"),
            "http://pr-web-1.preview.localhost:8080/"
        );
        assert_eq!(g.url(None, "/api"), "http://127.0.0.1:8080/api");
    }
}
