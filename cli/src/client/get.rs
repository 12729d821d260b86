//! `slipway get`: objects as the server's `meta.k8s.io/v1` Tables (the columns kubectl
//! shows, with `--show-labels` a LABELS column), or as YAML, JSON, names or a JSONPath
//! template; `--sort-by` orders them by a field, `get all` shows the workload kinds
//! together, and `-w` follows changes as rows until Ctrl-C.

use futures::TryStreamExt as _;
use kube::api::{DynamicObject, GetParams, ListParams, TypeMeta, WatchEvent, WatchParams};
use kube::core::Request;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::jsonpath::{self, Path, Template};
use super::resolve::{Catalog, Kind};
use super::target::{Session, Target};
use super::{api_failure, kind_and_names, print};
use crate::exit::Failure;

/// What the server is asked for to get a Table instead of the objects.
const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";

/// The kinds `get all` shows, in kubectl's order.
const ALL: [&str; 4] = ["pods", "services", "deployments", "replicasets"];

/// How `get` prints, from `-o`.
enum Output {
    /// The table, with every column the server has when wide.
    Table { wide: bool },
    /// The objects as YAML.
    Yaml,
    /// The objects as JSON.
    Json,
    /// kind/name per line.
    Name,
    /// The objects (one, or a List) through a template.
    JsonPath(Template),
}

impl Output {
    fn parse(flag: Option<&str>) -> Result<Output, Failure> {
        Ok(match flag {
            None => Output::Table { wide: false },
            Some("wide") => Output::Table { wide: true },
            Some("yaml") => Output::Yaml,
            Some("json") => Output::Json,
            Some("name") => Output::Name,
            Some(other) => {
                let Some(template) = other.strip_prefix("jsonpath=") else {
                    return Err(Failure::bad_input(format!(
                        "unknown output format {other:?}: use wide, yaml, json, name or \
                         jsonpath=TEMPLATE"
                    )));
                };
                Output::JsonPath(
                    Template::parse(template)
                        .map_err(|e| Failure::bad_input(format!("-o jsonpath: {e}")))?,
                )
            }
        })
    }
}

/// List objects of a kind, or show some by name.
///
/// Kinds are resolved by the server's discovery: plurals, singulars, short names (po,
/// deploy, svc) and KIND.GROUP (deployment.apps).
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  slipway get pods\n  slipway get deploy web -o yaml\n  \
    slipway get po -A -l app=web -o wide --show-labels\n  slipway get pods -w\n  \
    slipway get all\n  slipway get pods --sort-by=.metadata.creationTimestamp\n  \
    slipway get pods -o 'jsonpath={range .items[*]}{.metadata.name}{\"\\n\"}{end}'"
)]
pub(crate) struct GetArgs {
    /// KIND [NAME...] or KIND/NAME..., or `all` (pods, services, deployments and replica
    /// sets)
    #[arg(required = true, value_name = "KIND [NAME]...")]
    what: Vec<String>,
    /// Output format: wide, yaml, json, name or jsonpath=TEMPLATE (a table unless given)
    #[arg(short, long, value_name = "FORMAT")]
    output: Option<String>,
    /// A LABELS column with each object's labels
    #[arg(long)]
    show_labels: bool,
    /// Order the objects by this field, e.g. .metadata.name or
    /// {.metadata.creationTimestamp}
    #[arg(long, value_name = "JSONPATH")]
    sort_by: Option<String>,
    /// After listing, print changes as they happen, until Ctrl-C
    #[arg(short, long)]
    watch: bool,
    /// Only objects with these labels, e.g. app=web,tier!=db
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    selector: Option<String>,
    /// Objects in every namespace
    #[arg(short = 'A', long)]
    all_namespaces: bool,
    #[command(flatten)]
    target: Target,
}

pub(crate) async fn get(args: GetArgs, shutdown: CancellationToken) -> Result<(), Failure> {
    let wanted = kind_and_names(&args.what)?;
    let output = Output::parse(args.output.as_deref())?;
    let sort_by = args
        .sort_by
        .as_deref()
        .map(|shown| {
            Path::parse(shown)
                .map(|path| (path, shown))
                .map_err(|e| Failure::bad_input(format!("--sort-by: {e}")))
        })
        .transpose()?;
    let session = args.target.connect()?;
    let catalog = Catalog::load(&session.client).await?;
    let mut groups: Vec<(&Kind, Vec<String>)> = Vec::new();
    for (word, name) in &wanted {
        let kinds = match catalog.find(word) {
            Ok(kind) => vec![kind],
            Err(_) if word.eq_ignore_ascii_case("all") && name.is_none() => ALL
                .iter()
                .map(|kind| catalog.find(kind))
                .collect::<Result<_, _>>()?,
            Err(_) if word.eq_ignore_ascii_case("all") => {
                return Err(Failure::bad_input("all takes no names"));
            }
            Err(e) => return Err(e),
        };
        for kind in kinds {
            match groups.iter_mut().find(|(k, _)| k.resource == kind.resource) {
                Some((_, names)) => names.extend(name.clone()),
                None => groups.push((kind, name.iter().cloned().collect())),
            }
        }
    }
    let watched = match groups.as_slice() {
        [(kind, names)] if names.len() <= 1 => Some((*kind, names.first().cloned())),
        _ => None,
    };
    if args.watch && watched.is_none() {
        return Err(Failure::bad_input("-w watches one kind, or one object"));
    }
    let namespace = (!args.all_namespaces).then(|| session.namespace.clone());
    let query = Query {
        session: &session,
        namespace: namespace.as_deref(),
        selector: args.selector.as_deref(),
        sort_by: sort_by.as_ref(),
    };
    let Output::Table { wide } = output else {
        let mut objects = Vec::new();
        for (kind, names) in &groups {
            objects.extend(query.objects(kind, names).await?);
        }
        return print_objects(&output, &groups, objects, sort_by.as_ref());
    };
    let mut tables = Vec::new();
    for (kind, names) in &groups {
        tables.push(query.table(kind, names).await?);
    }
    let look = Look {
        wide,
        show_labels: args.show_labels,
    };
    let views: Vec<View> = tables
        .iter()
        .zip(&groups)
        .map(|(table, (kind, _))| {
            // Several kinds at once: each name says its kind, as kubectl prints them.
            let prefix = (groups.len() > 1).then(|| kind.label());
            View::new(table, look, namespace.is_none() && kind.namespaced, prefix)
        })
        .collect();
    let mut printed = false;
    for view in &views {
        if view.rows.is_empty() && !args.watch {
            continue;
        }
        if printed {
            say!();
        }
        print(&view.render());
        printed = true;
    }
    if !printed && !args.watch {
        eprint_none(&query, groups.iter().all(|(k, _)| k.namespaced));
    }
    if let (true, Some((kind, name)), Some(table), Some(view)) =
        (args.watch, &watched, tables.first(), views.first())
    {
        query
            .watch(kind, name.as_ref(), table, view, shutdown)
            .await?;
    }
    Ok(())
}

fn eprint_none(query: &Query<'_>, namespaced: bool) {
    match query.namespace {
        Some(namespace) if namespaced => {
            eprintln!("No resources found in {namespace} namespace.");
        }
        _ => eprintln!("No resources found"),
    }
}

fn print_objects(
    output: &Output,
    groups: &[(&Kind, Vec<String>)],
    objects: Vec<(&Kind, DynamicObject)>,
    sort_by: Option<&(Path, &str)>,
) -> Result<(), Failure> {
    let mut values = Vec::new();
    for (kind, mut object) in objects {
        object.types = Some(TypeMeta {
            api_version: kind.resource.api_version.clone(),
            kind: kind.resource.kind.clone(),
        });
        let value = serde_json::to_value(&object)
            .map_err(|e| Failure::failed(format!("cannot encode the object: {e}")))?;
        values.push((kind, value));
    }
    if let Some((path, shown)) = sort_by {
        jsonpath::sort(&mut values, path, shown, |(_, value)| value).map_err(Failure::bad_input)?;
    }
    if let Output::Name = output {
        for (kind, object) in &values {
            say!(
                "{}/{}",
                kind.label(),
                object["metadata"]["name"].as_str().unwrap_or_default()
            );
        }
        return Ok(());
    }
    let single = values.len() == 1 && groups.iter().all(|(_, names)| names.len() == 1);
    let mut values: Vec<Value> = values.into_iter().map(|(_, value)| value).collect();
    let value = if single {
        values.swap_remove(0)
    } else {
        serde_json::json!({
            "apiVersion": "v1",
            "kind": "List",
            "items": values,
            "metadata": { "resourceVersion": "" },
        })
    };
    let text = match output {
        Output::Json => serde_json::to_string_pretty(&value)
            .map_err(|e| Failure::failed(format!("cannot write JSON: {e}")))?,
        Output::JsonPath(template) => {
            // As kubectl: the template's text exactly, with no newline added.
            use std::io::Write as _;
            let _ = std::io::stdout().write_all(template.render(&value).as_bytes());
            return Ok(());
        }
        _ => serde_yaml_ng::to_string(&value)
            .map_err(|e| Failure::failed(format!("cannot write YAML: {e}")))?,
    };
    print(&text);
    Ok(())
}

/// Where a `get` looks.
struct Query<'a> {
    session: &'a Session,
    namespace: Option<&'a str>,
    selector: Option<&'a str>,
    /// Rows are sorted by this field of their objects, which the Tables then carry whole;
    /// with the path as the user wrote it.
    sort_by: Option<&'a (Path, &'a str)>,
}

impl Query<'_> {
    fn list_params(&self) -> ListParams {
        match self.selector {
            Some(selector) => ListParams::default().labels(selector),
            None => ListParams::default(),
        }
    }

    /// The Table of the named objects, or of the whole (selected) collection, sorted by
    /// `--sort-by`.
    async fn table(&self, kind: &Kind, names: &[String]) -> Result<Value, Failure> {
        let mut table = self.unsorted_table(kind, names).await?;
        if let (Some((path, shown)), Some(rows)) = (self.sort_by, table["rows"].as_array_mut()) {
            jsonpath::sort(rows, path, shown, |row| &row["object"]).map_err(Failure::bad_input)?;
        }
        Ok(table)
    }

    async fn unsorted_table(&self, kind: &Kind, names: &[String]) -> Result<Value, Failure> {
        let request = Request::new(kind.path(self.namespace));
        if names.is_empty() {
            let request = request
                .list(&self.list_params())
                .map_err(|e| Failure::bad_input(format!("cannot build the request: {e}")))?;
            return self.send(request).await;
        }
        let mut merged: Option<Value> = None;
        for name in names {
            let request = request
                .get(name, &GetParams::default())
                .map_err(|e| Failure::bad_input(format!("{name:?}: {e}")))?;
            let table = self.send(request).await?;
            match merged.as_mut().and_then(|m| m["rows"].as_array_mut()) {
                Some(rows) => rows.extend(table["rows"].as_array().cloned().unwrap_or_default()),
                None => merged = Some(table),
            }
        }
        Ok(merged.unwrap_or(Value::Null))
    }

    async fn send(&self, mut request: http::Request<Vec<u8>>) -> Result<Value, Failure> {
        request
            .headers_mut()
            .insert(http::header::ACCEPT, http::HeaderValue::from_static(TABLE));
        if self.sort_by.is_some() {
            // A row carries its object's metadata only, unless asked for the whole.
            let uri = request.uri().to_string();
            let separator = if uri.contains('?') { '&' } else { '?' };
            *request.uri_mut() = format!("{uri}{separator}includeObject=Object")
                .parse()
                .map_err(|e| Failure::bad_input(format!("cannot build the request: {e}")))?;
        }
        let table: Value = self
            .session
            .client
            .request(request)
            .await
            .map_err(api_failure)?;
        if table["kind"] != "Table" {
            return Err(Failure::failed("the server answered no Table"));
        }
        Ok(table)
    }

    /// The named objects, or the whole (selected) collection.
    async fn objects<'k>(
        &self,
        kind: &'k Kind,
        names: &[String],
    ) -> Result<Vec<(&'k Kind, DynamicObject)>, Failure> {
        let api = kind.api(&self.session.client, self.namespace);
        if names.is_empty() {
            let list = api.list(&self.list_params()).await.map_err(api_failure)?;
            return Ok(list.items.into_iter().map(|o| (kind, o)).collect());
        }
        let mut objects = Vec::new();
        for name in names {
            objects.push((kind, api.get(name).await.map_err(api_failure)?));
        }
        Ok(objects)
    }

    /// Prints a row per change from the Table's revision on, until `shutdown`.
    async fn watch(
        &self,
        kind: &Kind,
        name: Option<&String>,
        table: &Value,
        view: &View,
        shutdown: CancellationToken,
    ) -> Result<(), Failure> {
        let mut revision = table["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or("0")
            .to_owned();
        let mut params = WatchParams::default();
        if let Some(selector) = self.selector {
            params = params.labels(selector);
        }
        if let Some(name) = name {
            params = params.fields(&format!("metadata.name={name}"));
        }
        loop {
            let mut request = Request::new(kind.path(self.namespace))
                .watch(&params, &revision)
                .map_err(|e| Failure::bad_input(format!("cannot build the request: {e}")))?;
            request
                .headers_mut()
                .insert(http::header::ACCEPT, http::HeaderValue::from_static(TABLE));
            let events = tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                events = self.session.client.request_events::<Value>(request) => {
                    events.map_err(api_failure)?
                }
            };
            futures::pin_mut!(events);
            loop {
                let event = tokio::select! {
                    () = shutdown.cancelled() => return Ok(()),
                    event = events.try_next() => event.map_err(api_failure)?,
                };
                let Some(event) = event else { break };
                let table = match event {
                    WatchEvent::Added(t) | WatchEvent::Modified(t) | WatchEvent::Deleted(t) => t,
                    WatchEvent::Bookmark(b) => {
                        revision = b.metadata.resource_version;
                        continue;
                    }
                    WatchEvent::Error(e) => {
                        return Err(Failure::failed(format!("the watch ended: {}", e.message)));
                    }
                };
                if let Some(rv) = table["rows"][0]["object"]["metadata"]["resourceVersion"].as_str()
                {
                    rv.clone_into(&mut revision);
                }
                for row in view.rows_of(&table) {
                    print(&view.line(row));
                }
            }
        }
    }
}

/// Which columns a [`View`] shows.
#[derive(Clone, Copy)]
struct Look {
    /// Every column the server has, not only those of priority 0.
    wide: bool,
    /// A last LABELS column.
    show_labels: bool,
}

/// A Table as columns to print: the headers and the cells of each row as text.
struct View {
    headers: Vec<String>,
    /// Indexes of the Table's columns shown.
    columns: Vec<usize>,
    with_namespace: bool,
    show_labels: bool,
    /// The index of the Name column and the `KIND/` its cells get.
    name_prefix: Option<(usize, String)>,
    rows: Vec<Vec<String>>,
}

impl View {
    fn new(table: &Value, look: Look, with_namespace: bool, kind: Option<String>) -> View {
        let definitions = table["columnDefinitions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let columns: Vec<usize> = definitions
            .iter()
            .enumerate()
            .filter(|(_, d)| look.wide || d["priority"].as_i64().unwrap_or(0) == 0)
            .map(|(i, _)| i)
            .collect();
        let mut headers: Vec<String> = columns
            .iter()
            .map(|&i| {
                definitions[i]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_uppercase()
            })
            .collect();
        let name_prefix = kind.and_then(|kind| {
            let at = headers.iter().position(|h| h == "NAME")?;
            Some((at, format!("{kind}/")))
        });
        if with_namespace {
            headers.insert(0, "NAMESPACE".to_owned());
        }
        if look.show_labels {
            headers.push("LABELS".to_owned());
        }
        let mut view = View {
            headers,
            columns,
            with_namespace,
            show_labels: look.show_labels,
            name_prefix,
            rows: Vec::new(),
        };
        view.rows = view.rows_of(table);
        view
    }

    fn rows_of(&self, table: &Value) -> Vec<Vec<String>> {
        let rows = table["rows"].as_array().cloned().unwrap_or_default();
        rows.iter()
            .map(|row| {
                let mut cells: Vec<String> = self
                    .columns
                    .iter()
                    .map(|&i| super::or_none(&row["cells"][i]))
                    .collect();
                let metadata = &row["object"]["metadata"];
                if let Some((at, prefix)) = &self.name_prefix {
                    cells[*at].insert_str(0, prefix);
                }
                if self.with_namespace {
                    let namespace = metadata["namespace"].as_str();
                    cells.insert(0, namespace.unwrap_or_default().to_owned());
                }
                if self.show_labels {
                    cells.push(labels(&metadata["labels"]));
                }
                cells
            })
            .collect()
    }

    /// One row as it lines up under the headers and first rows (wider when it must be).
    fn line(&self, cells: Vec<String>) -> String {
        let mut rows = Vec::with_capacity(self.rows.len() + 2);
        rows.push(self.headers.clone());
        rows.extend(self.rows.iter().cloned());
        rows.push(cells);
        crate::columns::align(&rows, "   ")
            .pop()
            .unwrap_or_default()
    }

    fn render(&self) -> String {
        let mut rows = Vec::with_capacity(self.rows.len() + 1);
        rows.push(self.headers.clone());
        rows.extend(self.rows.iter().cloned());
        crate::columns::align(&rows, "   ").join("\n")
    }
}

/// Labels as kubectl's LABELS column shows them: `k=v` sorted by key and comma-joined,
/// or `<none>`. By key, not by the `k=v` text, which would put `app.kubernetes.io/name=x`
/// before `app=y`; sorted here rather than trusting the map's order, which serde_json's
/// `preserve_order` feature, if any crate turned it on, would make the server's.
fn labels(labels: &Value) -> String {
    let mut pairs: Vec<(&String, &str)> = labels
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k, v.as_str().unwrap_or_default()))
        .collect();
    if pairs.is_empty() {
        return "<none>".to_owned();
    }
    pairs.sort_by_key(|(k, _)| *k);
    let shown: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    shown.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_sort_by_key_as_kubectl() {
        let shown = labels(&serde_json::json!({
            "app.kubernetes.io/name": "x", "app": "y", "tier": "front"}));
        assert_eq!(shown, "app=y,app.kubernetes.io/name=x,tier=front");
        assert_eq!(labels(&serde_json::json!({})), "<none>");
        assert_eq!(labels(&Value::Null), "<none>");
    }

    #[test]
    fn tables_render_like_kubectl() {
        let table = serde_json::json!({
            "kind": "Table",
            "columnDefinitions": [
                {"name": "Name", "priority": 0},
                {"name": "Ready", "priority": 0},
                {"name": "IP", "priority": 1},
            ],
            "rows": [
                {"cells": ["web-1", "1/1", "127.64.0.2"], "object": {"metadata": {
                    "namespace": "a", "labels": {"tier": "front", "app": "web"}}}},
                {"cells": ["db", "0/1", null], "object": {"metadata": {"namespace": "bb"}}},
            ],
        });
        let plain = Look {
            wide: false,
            show_labels: false,
        };
        let view = View::new(&table, plain, false, None);
        assert_eq!(view.render(), "NAME    READY\nweb-1   1/1\ndb      0/1");
        let wide = Look {
            wide: true,
            show_labels: true,
        };
        let view = View::new(&table, wide, true, Some("pod".to_owned()));
        assert_eq!(
            view.render(),
            "NAMESPACE   NAME        READY   IP           LABELS\n\
             a           pod/web-1   1/1     127.64.0.2   app=web,tier=front\n\
             bb          pod/db      0/1     <none>       <none>"
        );
        assert_eq!(
            view.line(vec![
                "c".into(),
                "pod/x".into(),
                "1/1".into(),
                "-".into(),
                "<none>".into()
            ]),
            "c           pod/x       1/1     -            <none>"
        );
    }
}
