//! A preview's recipe read from GitHub at the pull request's head: `.slipway.yaml`, then
//! its manifests with `${VARIABLES}` substituted, each a namespaced object put in the
//! preview's namespace. Every refusal names the file (and line where there is one), ready
//! to be said on the pull request.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;
use slipway_github::{GitHub, RepoRef};
use slipway_preview_config::{FILE, PreviewConfig, substitute};

use crate::cluster::PREVIEW_LABEL;

/// Why a recipe could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    /// The repository's config or manifests are wrong: the change's fault, said on the PR.
    #[error("{0}")]
    Broken(String),
    /// GitHub failed.
    #[error(transparent)]
    GitHub(#[from] slipway_github::Error),
}

/// What a preview applies.
#[derive(Debug)]
pub struct Recipe {
    /// The repository's `.slipway.yaml`.
    pub config: PreviewConfig,
    /// The objects, each with where it came from (`deploy/app.yaml: Deployment web`).
    pub objects: Vec<(String, Value)>,
}

async fn text(
    github: &dyn GitHub,
    repo: &RepoRef,
    path: &str,
    sha: &str,
) -> Result<Option<String>, RecipeError> {
    match github.file(repo, path, sha).await? {
        None => Ok(None),
        Some(bytes) => String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| RecipeError::Broken(format!("{path}: is not UTF-8 text"))),
    }
}

fn is_yaml(path: &str) -> bool {
    path.ends_with(".yaml") || path.ends_with(".yml")
}

/// Reads the recipe at `sha`. `builtins` are the `SLIPWAY_*` values.
pub async fn read(
    github: &dyn GitHub,
    repo: &RepoRef,
    sha: &str,
    namespace: &str,
    builtins: &BTreeMap<String, String>,
) -> Result<Recipe, RecipeError> {
    let config = text(github, repo, FILE, sha).await?.ok_or_else(|| {
        RecipeError::Broken(format!(
            "{FILE}: not found at the root of the repository at {sha}; add one to get previews"
        ))
    })?;
    let config = PreviewConfig::parse(&config).map_err(|e| RecipeError::Broken(e.to_string()))?;
    let mut values = config.variables.clone();
    values.extend(builtins.clone());
    let mut objects = Vec::new();
    for path in &config.manifests {
        let files = match text(github, repo, path, sha).await? {
            Some(content) => vec![(path.clone(), content)],
            None => {
                let Some(entries) = github.dir(repo, path, sha).await? else {
                    return Err(RecipeError::Broken(format!(
                        "{FILE}: preview.manifests: {path:?} is neither a file nor a directory at {sha}"
                    )));
                };
                let mut files = Vec::new();
                for entry in entries.into_iter().filter(|e| is_yaml(e)) {
                    let content = text(github, repo, &entry, sha).await?.unwrap_or_default();
                    files.push((entry, content));
                }
                files
            }
        };
        for (file, content) in files {
            let content = substitute(&file, &content, &values)
                .map_err(|e| RecipeError::Broken(e.to_string()))?;
            objects.extend(documents(&file, &content, namespace)?);
        }
    }
    if objects.is_empty() {
        return Err(RecipeError::Broken(format!(
            "{FILE}: preview.manifests hold no objects at {sha}"
        )));
    }
    Ok(Recipe { config, objects })
}

/// The objects of one multi-document YAML file, put in `namespace` and labelled.
pub fn documents(
    file: &str,
    content: &str,
    namespace: &str,
) -> Result<Vec<(String, Value)>, RecipeError> {
    let mut out = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(content) {
        let value = Value::deserialize(document).map_err(|e| {
            let at = e
                .location()
                .map(|l| format!("{file}:{}:{}", l.line(), l.column()))
                .unwrap_or_else(|| file.to_owned());
            RecipeError::Broken(format!("{at}: {e}"))
        })?;
        let mut object = match value {
            Value::Null => continue,
            Value::Object(object) => object,
            _ => {
                return Err(RecipeError::Broken(format!(
                    "{file}: every document must be a Kubernetes object"
                )));
            }
        };
        let kind = object
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let api_version = object
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let name = object
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if kind.is_empty() || api_version.is_empty() || name.is_empty() {
            return Err(RecipeError::Broken(format!(
                "{file}: an object needs apiVersion, kind and metadata.name"
            )));
        }
        if kind == "List" || kind.ends_with("List") {
            return Err(RecipeError::Broken(format!(
                "{file}: {kind} {name}: lists are not supported; write one document per object"
            )));
        }
        let what = format!("{file}: {kind} {name}");
        let metadata = object
            .get_mut("metadata")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| RecipeError::Broken(format!("{what}: metadata must be a map")))?;
        match metadata.get("namespace").and_then(Value::as_str) {
            None => {}
            Some(ns) if ns == namespace => {}
            Some(ns) => {
                return Err(RecipeError::Broken(format!(
                    "{what}: namespace {ns:?} is not the preview's; leave metadata.namespace out"
                )));
            }
        }
        metadata.insert("namespace".to_owned(), Value::String(namespace.to_owned()));
        let labels = metadata
            .entry("labels")
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
        if let Some(labels) = labels.as_object_mut() {
            labels.insert(
                PREVIEW_LABEL.to_owned(),
                Value::String(namespace.to_owned()),
            );
        }
        out.push((what, Value::Object(object)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_put_in_the_namespace_and_checked() {
        let objects = documents(
            "deploy/app.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: pr-x-1\n  labels: {app: web}\n",
            "pr-x-1",
        )
        .unwrap();
        assert_eq!(objects.len(), 2);
        assert_eq!(objects[0].0, "deploy/app.yaml: ConfigMap a");
        assert_eq!(objects[0].1["metadata"]["namespace"], "pr-x-1");
        assert_eq!(objects[1].1["metadata"]["labels"]["app"], "web");
        assert_eq!(objects[1].1["metadata"]["labels"][PREVIEW_LABEL], "pr-x-1");

        for (content, needle) in [
            (
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  namespace: prod\n",
                "namespace \"prod\" is not the preview's",
            ),
            (
                "kind: ConfigMap\nmetadata:\n  name: a\n",
                "needs apiVersion, kind and metadata.name",
            ),
            ("- a\n- b\n", "must be a Kubernetes object"),
            (
                "apiVersion: v1\nkind: ConfigMap\nmetadata: [\n",
                "deploy/app.yaml:",
            ),
            (
                "apiVersion: v1\nkind: List\nmetadata:\n  name: a\n",
                "lists are not supported",
            ),
        ] {
            let err = documents("deploy/app.yaml", content, "pr-x-1")
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{err}");
        }
    }
}
