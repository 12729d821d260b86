//! The routing table: Ingresses compiled into host and path lookups, with Kubernetes' matching rules.
//!
//! A request's host picks groups of paths, most specific first: the rules naming exactly that
//! host, then those naming the wildcard that covers it (`*.example.com` covers one more label),
//! then the rules naming no host. In each group the longest matching path wins and an `Exact`
//! path beats a `Prefix` one of the same length, across all Ingresses of the group; a group
//! whose paths all miss sends the request to the `defaultBackend` of the first Ingress naming
//! that host that has one, if any, before the next group is tried. The host-less group's default is the
//! `defaultBackend` of the first Ingress that names no host at all: the catch-all. Ingresses are
//! ordered by creation time, then namespace and name, so the oldest wins a tie.

use std::collections::{HashMap, HashSet};

use k8s_openapi::api::networking::v1::{Ingress, IngressBackend};

use crate::upstream::{Backend, ServicePort};

/// The Ingress class this gateway serves; Ingresses with no class are served too.
pub const INGRESS_CLASS: &str = "slipway";

/// The annotation that named an Ingress's class before `spec.ingressClassName`.
const CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";

/// The annotation (`"true"`) of an Ingress whose apps may be asleep: the gateway reports
/// requests for its namespace to the [`crate::Activity`] and holds a request while the app
/// wakes.
pub const WAKE_ANNOTATION: &str = "slipway.dev/wake";

/// Hosts and paths to backends, built from a set of Ingresses and then only read.
#[derive(Debug, Default)]
pub(crate) struct RouteTable {
    exact: HashMap<String, Group>,
    /// Keyed by the wildcard's suffix: `*.example.com` is under `example.com`.
    wildcard: HashMap<String, Group>,
    any_host: Group,
    /// Namespaces with an Ingress annotated [`WAKE_ANNOTATION`].
    wakeable: HashSet<String>,
}

/// The paths of one host (or wildcard, or of no host) across Ingresses.
#[derive(Debug, Default)]
struct Group {
    /// Kept in match priority order: the first that matches wins.
    paths: Vec<PathRoute>,
    default_backend: Option<Backend>,
}

#[derive(Debug)]
struct PathRoute {
    /// For `Prefix`, without trailing slashes (`/` stays `/`).
    path: String,
    kind: PathKind,
    backend: Backend,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum PathKind {
    // Declared first so that it sorts first: Exact beats Prefix of the same length.
    Exact,
    Prefix,
}

impl RouteTable {
    /// Compiles the Ingresses of this gateway's class; what cannot be served is logged and left out.
    pub(crate) fn build(ingresses: &[Ingress]) -> Self {
        let mut ordered: Vec<&Ingress> = ingresses.iter().filter(|i| is_ours(i)).collect();
        ordered.sort_by(|a, b| {
            let key = |i: &Ingress| {
                (
                    i.metadata.creation_timestamp.clone(),
                    i.metadata.namespace.clone(),
                    i.metadata.name.clone(),
                )
            };
            key(a).cmp(&key(b))
        });

        let mut table = Self::default();
        for ingress in ordered {
            table.add(ingress);
        }
        for group in table
            .exact
            .values_mut()
            .chain(table.wildcard.values_mut())
            .chain([&mut table.any_host])
        {
            // Stable, so equal paths keep Ingress order and the oldest wins.
            group
                .paths
                .sort_by(|a, b| b.path.len().cmp(&a.path.len()).then(a.kind.cmp(&b.kind)));
        }
        table
    }

    fn add(&mut self, ingress: &Ingress) {
        let namespace = ingress.metadata.namespace.as_deref().unwrap_or("default");
        let wakes = ingress
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(WAKE_ANNOTATION))
            .is_some_and(|v| v == "true");
        if wakes {
            self.wakeable.insert(namespace.to_owned());
        }
        let name = format!(
            "{namespace}/{}",
            ingress.metadata.name.as_deref().unwrap_or("")
        );
        let Some(spec) = &ingress.spec else { return };
        let default_backend = spec
            .default_backend
            .as_ref()
            .and_then(|b| backend(b, namespace, &name));

        let mut names_a_host = false;
        for rule in spec.rules.iter().flatten() {
            let group = match rule.host.as_deref().map(HostPattern::parse) {
                None => &mut self.any_host,
                Some(Err(reason)) => {
                    tracing::warn!(ingress = %name, "ignoring a rule: {reason}");
                    continue;
                }
                Some(Ok(pattern)) => {
                    names_a_host = true;
                    let group = match pattern {
                        HostPattern::Exact(host) => self.exact.entry(host).or_default(),
                        HostPattern::Wildcard(suffix) => self.wildcard.entry(suffix).or_default(),
                    };
                    if group.default_backend.is_none() {
                        group.default_backend.clone_from(&default_backend);
                    }
                    group
                }
            };
            for path in rule.http.iter().flat_map(|http| &http.paths) {
                let Some(backend) = backend(&path.backend, namespace, &name) else {
                    continue;
                };
                match path_route(path.path.as_deref(), &path.path_type) {
                    Ok((path, kind)) => group.paths.push(PathRoute {
                        path,
                        kind,
                        backend,
                    }),
                    Err(reason) => tracing::warn!(ingress = %name, "ignoring a path: {reason}"),
                }
            }
        }
        if !names_a_host && self.any_host.default_backend.is_none() {
            self.any_host.default_backend = default_backend;
        }
    }

    /// The backend for a request to `host` (lowercase, no port) and `path` (no query).
    pub(crate) fn route(&self, host: &str, path: &str) -> Option<&Backend> {
        let wildcard = host
            .split_once('.')
            .and_then(|(_, suffix)| self.wildcard.get(suffix));
        [self.exact.get(host), wildcard, Some(&self.any_host)]
            .into_iter()
            .flatten()
            .find_map(|group| group.route(path))
    }

    /// Whether requests for `namespace`'s Services are reported and held while its apps wake.
    pub(crate) fn wakes(&self, namespace: &str) -> bool {
        self.wakeable.contains(namespace)
    }

    /// Whether any Ingress names `host` exactly or by wildcard: tells a 404's page what to say.
    pub(crate) fn knows_host(&self, host: &str) -> bool {
        self.exact.contains_key(host)
            || host
                .split_once('.')
                .is_some_and(|(_, suffix)| self.wildcard.contains_key(suffix))
    }
}

impl Group {
    fn route(&self, path: &str) -> Option<&Backend> {
        self.paths
            .iter()
            .find(|route| route.matches(path))
            .map(|route| &route.backend)
            .or(self.default_backend.as_ref())
    }
}

impl PathRoute {
    fn matches(&self, path: &str) -> bool {
        match self.kind {
            PathKind::Exact => path == self.path,
            PathKind::Prefix => {
                self.path == "/"
                    || path
                        .strip_prefix(self.path.as_str())
                        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            }
        }
    }
}

/// Whether this gateway serves the Ingress: no class, or ours.
fn is_ours(ingress: &Ingress) -> bool {
    let class = ingress
        .spec
        .as_ref()
        .and_then(|spec| spec.ingress_class_name.as_deref())
        .or_else(|| {
            ingress
                .metadata
                .annotations
                .as_ref()
                .and_then(|annotations| annotations.get(CLASS_ANNOTATION))
                .map(String::as_str)
        });
    class.is_none_or(|class| class == INGRESS_CLASS)
}

/// A rule's `host`: an exact name or a wildcard of one leading label.
#[derive(Debug, PartialEq, Eq)]
enum HostPattern {
    Exact(String),
    Wildcard(String),
}

impl HostPattern {
    fn parse(host: &str) -> Result<Self, String> {
        let host = host.to_ascii_lowercase();
        let (wildcard, name) = match host.strip_prefix("*.") {
            Some(suffix) => (true, suffix),
            None => (false, host.as_str()),
        };
        if name.is_empty()
            || name.split('.').any(|label| {
                label.is_empty()
                    || !label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
        {
            return Err(format!(
                "host {host:?} is not a DNS name or a wildcard of one"
            ));
        }
        Ok(if wildcard {
            Self::Wildcard(name.to_owned())
        } else {
            Self::Exact(name.to_owned())
        })
    }
}

fn path_route(path: Option<&str>, path_type: &str) -> Result<(String, PathKind), String> {
    let path = path.unwrap_or("/");
    if !path.starts_with('/') {
        return Err(format!("path {path:?} is not absolute"));
    }
    match path_type {
        "Exact" => Ok((path.to_owned(), PathKind::Exact)),
        // The implementation's choice, and ours is Prefix.
        "Prefix" | "ImplementationSpecific" => {
            let trimmed = path.trim_end_matches('/');
            let trimmed = if trimmed.is_empty() { "/" } else { trimmed };
            Ok((trimmed.to_owned(), PathKind::Prefix))
        }
        other => Err(format!(
            "pathType {other:?} of path {path:?} is not Exact, Prefix or ImplementationSpecific"
        )),
    }
}

fn backend(backend: &IngressBackend, namespace: &str, ingress: &str) -> Option<Backend> {
    let Some(service) = &backend.service else {
        if backend.resource.is_some() {
            tracing::warn!(%ingress, "ignoring a resource backend: only Service backends are served");
        }
        return None;
    };
    let port = service
        .port
        .as_ref()
        .and_then(|port| match (port.number, &port.name) {
            (Some(number), _) => u16::try_from(number)
                .ok()
                .filter(|n| *n > 0)
                .map(ServicePort::Number),
            (None, Some(name)) if !name.is_empty() => Some(ServicePort::Name(name.clone())),
            (None, _) => None,
        });
    let Some(port) = port else {
        tracing::warn!(%ingress, service = %service.name, "ignoring a backend without a valid port");
        return None;
    };
    Some(Backend {
        namespace: namespace.to_owned(),
        service: service.name.clone(),
        port,
    })
}

#[cfg(test)]
mod tests;
