//! `slipway get`: objects as the server's `meta.k8s.io/v1` Tables (the columns kubectl
//! shows), or as YAML, JSON or names; `-w` follows changes as rows until Ctrl-C.

use futures::TryStreamExt as _;
use kube::api::{DynamicObject, GetParams, ListParams, TypeMeta, WatchEvent, WatchParams};
use kube::core::Request;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::resolve::{Catalog, Kind};
use super::target::{Session, Target};
use super::{api_failure, kind_and_names, print};
use crate::exit::Failure;

/// What the server is asked for to get a Table instead of the objects.
const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";

/// How `get` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    /// The table with every column the server has
    Wide,
    /// The objects as YAML
    Yaml,
    /// The objects as JSON
    Json,
    /// kind/name per line
    Name,
}

/// List objects of a kind, or show some by name.
///
/// Kinds are resolved by the server's discovery: plurals, singulars, short names (po,
/// deploy, svc) and KIND.GROUP (deployment.apps).
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  slipway get pods\n  slipway get deploy web -o yaml\n  \
    slipway get po -A -l app=web -o wide\n  slipway get pods -w"
)]
pub(crate) struct GetArgs {
    /// KIND [NAME...] or KIND/NAME...
    #[arg(required = true, value_name = "KIND [NAME]...")]
    what: Vec<String>,
    /// Output format (a table unless given)
    #[arg(short, long, value_enum)]
    output: Option<Format>,
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
    let session = args.target.connect()?;
    let catalog = Catalog::load(&session.client).await?;
    let mut groups: Vec<(&Kind, Vec<String>)> = Vec::new();
    for (word, name) in &wanted {
        let kind = catalog.find(word)?;
        match groups.iter_mut().find(|(k, _)| k.resource == kind.resource) {
            Some((_, names)) => names.extend(name.clone()),
            None => groups.push((kind, name.iter().cloned().collect())),
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
    };
    match args.output {
        None | Some(Format::Wide) => {
            let wide = args.output == Some(Format::Wide);
            let mut tables = Vec::new();
            for (kind, names) in &groups {
                tables.push(query.table(kind, names).await?);
            }
            let mut printed = false;
            for (table, (kind, _)) in tables.iter().zip(&groups) {
                let view = View::new(table, wide, namespace.is_none() && kind.namespaced);
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
            if let (true, Some((kind, name)), Some(table)) = (args.watch, &watched, tables.first())
            {
                let view = View::new(table, wide, namespace.is_none() && kind.namespaced);
                query
                    .watch(kind, name.as_ref(), table, &view, shutdown)
                    .await?;
            }
        }
        Some(format) => {
            let mut objects = Vec::new();
            for (kind, names) in &groups {
                objects.extend(query.objects(kind, names).await?);
            }
            print_objects(format, &groups, objects)?;
        }
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
    format: Format,
    groups: &[(&Kind, Vec<String>)],
    objects: Vec<(&Kind, DynamicObject)>,
) -> Result<(), Failure> {
    if format == Format::Name {
        for (kind, object) in &objects {
            say!(
                "{}/{}",
                kind.label(),
                object.metadata.name.as_deref().unwrap_or_default()
            );
        }
        return Ok(());
    }
    let single = objects.len() == 1 && groups.iter().all(|(_, names)| names.len() == 1);
    let mut values = Vec::new();
    for (kind, mut object) in objects {
        object.types = Some(TypeMeta {
            api_version: kind.resource.api_version.clone(),
            kind: kind.resource.kind.clone(),
        });
        values.push(
            serde_json::to_value(&object)
                .map_err(|e| Failure::failed(format!("cannot encode the object: {e}")))?,
        );
    }
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
    let text = match format {
        Format::Json => serde_json::to_string_pretty(&value)
            .map_err(|e| Failure::failed(format!("cannot write JSON: {e}")))?,
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
}

impl Query<'_> {
    fn list_params(&self) -> ListParams {
        match self.selector {
            Some(selector) => ListParams::default().labels(selector),
            None => ListParams::default(),
        }
    }

    /// The Table of the named objects, or of the whole (selected) collection.
    async fn table(&self, kind: &Kind, names: &[String]) -> Result<Value, Failure> {
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
                    print(&view.line(&row));
                }
            }
        }
    }
}

/// A Table as columns to print: the headers and the cells of each row as text.
struct View {
    headers: Vec<String>,
    /// Indexes of the Table's columns shown.
    columns: Vec<usize>,
    with_namespace: bool,
    rows: Vec<Vec<String>>,
    widths: Vec<usize>,
}

impl View {
    fn new(table: &Value, wide: bool, with_namespace: bool) -> View {
        let definitions = table["columnDefinitions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let columns: Vec<usize> = definitions
            .iter()
            .enumerate()
            .filter(|(_, d)| wide || d["priority"].as_i64().unwrap_or(0) == 0)
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
        if with_namespace {
            headers.insert(0, "NAMESPACE".to_owned());
        }
        let mut view = View {
            headers,
            columns,
            with_namespace,
            rows: Vec::new(),
            widths: Vec::new(),
        };
        view.rows = view.rows_of(table);
        view.widths = view.headers.iter().map(|h| h.chars().count()).collect();
        for row in &view.rows {
            for (width, cell) in view.widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
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
                if self.with_namespace {
                    let namespace = row["object"]["metadata"]["namespace"].as_str();
                    cells.insert(0, namespace.unwrap_or_default().to_owned());
                }
                cells
            })
            .collect()
    }

    fn line(&self, cells: &[String]) -> String {
        let mut line = String::new();
        for (i, text) in cells.iter().enumerate() {
            if i > 0 {
                line.push_str("   ");
            }
            line.push_str(text);
            let width = self.widths.get(i).copied().unwrap_or(0);
            line.extend(std::iter::repeat_n(
                ' ',
                width.saturating_sub(text.chars().count()),
            ));
        }
        line.trim_end().to_owned()
    }

    fn render(&self) -> String {
        let mut out = self.line(&self.headers);
        for row in &self.rows {
            out.push('\n');
            out.push_str(&self.line(row));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
                {"cells": ["web-1", "1/1", "127.64.0.2"], "object": {"metadata": {"namespace": "a"}}},
                {"cells": ["db", "0/1", null], "object": {"metadata": {"namespace": "bb"}}},
            ],
        });
        let view = View::new(&table, false, false);
        assert_eq!(view.render(), "NAME    READY\nweb-1   1/1\ndb      0/1");
        let view = View::new(&table, true, true);
        assert_eq!(
            view.render(),
            "NAMESPACE   NAME    READY   IP\n\
             a           web-1   1/1     127.64.0.2\n\
             bb          db      0/1     <none>"
        );
    }
}
