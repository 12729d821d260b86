//! Kinds as users name them (`po`, `pods`, `pod`, `Pod`, `deploy`, `deployment.apps`,
//! `deployments.v1.apps`) resolved through the server's discovery documents. kube-rs's
//! `Discovery` drops the short names, so the resource lists are read here directly.

use futures::future::try_join_all;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResourceList;
use kube::api::{Api, ApiResource, DynamicObject};

use super::api_failure;
use crate::exit::Failure;

/// One served resource type.
#[derive(Debug, Clone)]
pub(super) struct Kind {
    pub(super) resource: ApiResource,
    pub(super) namespaced: bool,
    singular: String,
    short_names: Vec<String>,
    /// Served at its group's preferred version (the one a bare name resolves to).
    preferred: bool,
    /// Whether it has a scale subresource.
    pub(super) scalable: bool,
}

impl Kind {
    /// The typed-less API of this kind, in `namespace` or across all of them.
    pub(super) fn api(&self, client: &kube::Client, namespace: Option<&str>) -> Api<DynamicObject> {
        match (self.namespaced, namespace) {
            (true, Some(namespace)) => {
                Api::namespaced_with(client.clone(), namespace, &self.resource)
            }
            _ => Api::all_with(client.clone(), &self.resource),
        }
    }

    /// The collection's URL path, in `namespace` or across all of them.
    pub(super) fn path(&self, namespace: Option<&str>) -> String {
        let base = if self.resource.group.is_empty() {
            format!("/api/{}", self.resource.version)
        } else {
            format!("/apis/{}", self.resource.api_version)
        };
        match (self.namespaced, namespace) {
            (true, Some(namespace)) => {
                format!("{base}/namespaces/{namespace}/{}", self.resource.plural)
            }
            _ => format!("{base}/{}", self.resource.plural),
        }
    }

    /// How kubectl names the kind in its messages: `pod`, `deployment.apps`.
    pub(super) fn label(&self) -> String {
        let kind = self.resource.kind.to_lowercase();
        if self.resource.group.is_empty() {
            kind
        } else {
            format!("{kind}.{}", self.resource.group)
        }
    }

    /// Whether `name` (lowercased) names this kind without a group.
    fn is_called(&self, name: &str) -> bool {
        self.resource.plural == name
            || self.singular == name
            || self.resource.kind.to_lowercase() == name
            || self.short_names.iter().any(|s| s == name)
    }
}

/// Every resource type the server serves, at every version.
pub(super) struct Catalog {
    kinds: Vec<Kind>,
}

impl Catalog {
    pub(super) async fn load(client: &kube::Client) -> Result<Catalog, Failure> {
        let core = client.list_core_api_versions().await.map_err(api_failure)?;
        let groups = client.list_api_groups().await.map_err(api_failure)?;
        let mut wanted: Vec<(String, String, bool)> = core
            .versions
            .iter()
            .enumerate()
            .map(|(i, v)| (String::new(), v.clone(), i == 0))
            .collect();
        for group in &groups.groups {
            let preferred = group.preferred_version.as_ref().map(|v| v.version.clone());
            for (i, version) in group.versions.iter().enumerate() {
                let is_preferred = match &preferred {
                    Some(p) => *p == version.version,
                    None => i == 0,
                };
                wanted.push((group.name.clone(), version.version.clone(), is_preferred));
            }
        }
        let lists = try_join_all(wanted.iter().map(|(group, version, _)| async move {
            if group.is_empty() {
                client.list_core_api_resources(version).await
            } else {
                client
                    .list_api_group_resources(&format!("{group}/{version}"))
                    .await
            }
        }))
        .await
        .map_err(api_failure)?;
        let kinds = wanted
            .iter()
            .zip(&lists)
            .flat_map(|((group, version, preferred), list)| {
                kinds_of(group, version, *preferred, list)
            })
            .collect();
        Ok(Catalog { kinds })
    }

    /// The kind a user's word names; unknown words are bad input.
    pub(super) fn find(&self, word: &str) -> Result<&Kind, Failure> {
        let lower = word.to_lowercase();
        let found = self
            .kinds
            .iter()
            .filter(|k| k.preferred)
            .find(|k| k.is_called(&lower))
            .or_else(|| {
                // `deployment.apps`, `deployments.v1.apps`: a name, then a group or a
                // version and a group.
                let (name, rest) = lower.split_once('.')?;
                self.kinds.iter().find(|k| {
                    let group = &k.resource.group;
                    k.is_called(name)
                        && ((k.preferred && rest == group)
                            || rest
                                .split_once('.')
                                .is_some_and(|(v, g)| v == k.resource.version && g == group))
                })
            });
        found.ok_or_else(|| {
            Failure::bad_input(format!(
                "the server doesn't have a resource type \"{word}\""
            ))
        })
    }

    /// The kind of a manifest's `apiVersion` and `kind`.
    pub(super) fn by_type(&self, api_version: &str, kind: &str) -> Option<&Kind> {
        self.kinds
            .iter()
            .find(|k| k.resource.api_version == api_version && k.resource.kind == kind)
    }

    /// The kind a manifest's document is, or why it is none the server serves.
    pub(super) fn of(&self, document: &super::manifest::Document) -> Result<&Kind, Failure> {
        self.by_type(document.api_version(), document.kind())
            .ok_or_else(|| {
                Failure::bad_input(format!(
                    "{}: no kind \"{}\" is served at \"{}\"",
                    document.source,
                    document.kind(),
                    document.api_version()
                ))
            })
    }
}

fn kinds_of(group: &str, version: &str, preferred: bool, list: &APIResourceList) -> Vec<Kind> {
    let api_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    list.resources
        .iter()
        .filter(|r| !r.name.contains('/'))
        .map(|r| Kind {
            resource: ApiResource {
                group: group.to_owned(),
                version: version.to_owned(),
                api_version: api_version.clone(),
                kind: r.kind.clone(),
                plural: r.name.clone(),
            },
            namespaced: r.namespaced,
            singular: if r.singular_name.is_empty() {
                r.kind.to_lowercase()
            } else {
                r.singular_name.clone()
            },
            short_names: r.short_names.clone().unwrap_or_default(),
            preferred,
            scalable: list
                .resources
                .iter()
                .any(|s| s.name == format!("{}/scale", r.name)),
        })
        .collect()
}
