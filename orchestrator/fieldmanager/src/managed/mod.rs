//! `metadata.managedFields`: one entry per manager, operation and subresource, and the two
//! operations that change them.

use serde_json::{Value, json};
use slipway_patch::Schema;

use crate::paths::{self, FieldSet, Path, paths_of};

/// How a manager came to own its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Server-side apply: the manager owns exactly what it last applied.
    Apply,
    /// Any other write: the manager owns what it changed.
    Update,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// Who is writing, as the request names them.
#[derive(Debug, Clone, Copy)]
pub struct Manager<'a> {
    /// `fieldManager`, or what the user agent makes of it.
    pub name: &'a str,
    /// The API version the request used.
    pub api_version: &'a str,
    /// `status` or `scale` for subresource writes.
    pub subresource: Option<&'a str>,
    /// Now, as an RFC 3339 timestamp, stamped on entries that change.
    pub time: &'a str,
}

#[derive(Debug, Clone, PartialEq)]
struct Entry {
    manager: String,
    operation: Operation,
    api_version: String,
    time: Option<String>,
    subresource: Option<String>,
    fields: FieldSet,
}

impl Entry {
    fn is(&self, manager: &Manager<'_>, operation: Operation) -> bool {
        self.manager == manager.name
            && self.operation == operation
            && self.subresource.as_deref() == manager.subresource
    }

    /// How Kubernetes names a manager in a conflict.
    fn describe(&self) -> String {
        let mut out = format!("{:?}", self.manager);
        if let Some(sub) = &self.subresource {
            out.push_str(&format!(" with subresource {sub:?}"));
        }
        if self.operation == Operation::Update {
            out.push_str(&format!(" using {}", self.api_version));
            if let Some(time) = &self.time {
                out.push_str(&format!(" at {time}"));
            }
        }
        out
    }
}

/// The managed fields of one object.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ManagedFields {
    entries: Vec<Entry>,
}

/// A field another manager owns with another value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The other manager, as Kubernetes names it (`"kubectl-scale" using apps/v1 at ...`).
    pub manager: String,
    /// The field, as Kubernetes prints it (`.spec.replicas`).
    pub field: String,
}

/// Why an apply was refused.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Fields owned by other managers would change; `force` takes them over.
    #[error("{}", conflict_message(.0))]
    Conflicts(Vec<Conflict>),
    /// The configuration cannot be merged into the object.
    #[error("{0}")]
    Merge(String),
}

/// Kubernetes' message: one conflict on one line, several grouped by manager.
fn conflict_message(conflicts: &[Conflict]) -> String {
    if let [one] = conflicts {
        return format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            one.manager, one.field
        );
    }
    let mut managers: Vec<&str> = conflicts.iter().map(|c| c.manager.as_str()).collect();
    managers.sort_unstable();
    managers.dedup();
    let mut lines = Vec::new();
    for manager in managers {
        lines.push(format!("conflicts with {manager}:"));
        for c in conflicts.iter().filter(|c| c.manager == manager) {
            lines.push(format!("- {}", c.field));
        }
    }
    format!(
        "Apply failed with {} conflicts: {}",
        conflicts.len(),
        lines.join("\n")
    )
}

impl ManagedFields {
    /// The object's `metadata.managedFields`, or what is wrong with them.
    ///
    /// # Errors
    ///
    /// A message naming the malformed entry.
    pub fn read(object: &Value) -> Result<ManagedFields, String> {
        let Some(list) = object.get("metadata").and_then(|m| m.get("managedFields")) else {
            return Ok(ManagedFields::default());
        };
        let Some(list) = list.as_array() else {
            return Err("metadata.managedFields must be a list".to_owned());
        };
        let mut entries = Vec::new();
        for (i, entry) in list.iter().enumerate() {
            let bad = |what: &str| format!("metadata.managedFields[{i}]: {what}");
            let text = |name: &str| entry.get(name).and_then(Value::as_str).map(str::to_owned);
            let operation = match entry.get("operation").and_then(Value::as_str) {
                Some("Apply") => Operation::Apply,
                Some("Update") => Operation::Update,
                _ => return Err(bad("operation must be Apply or Update")),
            };
            let fields = match entry.get("fieldsV1") {
                Some(tree) => paths::from_fields_v1(tree).map_err(|e| bad(&e))?,
                None => FieldSet::new(),
            };
            entries.push(Entry {
                manager: text("manager").ok_or_else(|| bad("manager is required"))?,
                operation,
                api_version: text("apiVersion").unwrap_or_default(),
                time: text("time"),
                subresource: text("subresource").filter(|s| !s.is_empty()),
                fields,
            });
        }
        Ok(ManagedFields { entries })
    }

    /// Writes the entries into `metadata.managedFields`, or removes the field when none is
    /// left.
    pub fn write(&self, object: &mut Value) {
        let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) else {
            return;
        };
        if self.entries.is_empty() {
            meta.remove("managedFields");
            return;
        }
        let entries: Vec<Value> = self
            .entries
            .iter()
            .map(|e| {
                let mut entry = json!({
                    "manager": e.manager,
                    "operation": e.operation.as_str(),
                    "apiVersion": e.api_version,
                    "fieldsType": "FieldsV1",
                    "fieldsV1": paths::to_fields_v1(&e.fields),
                });
                if let Some(time) = &e.time {
                    entry["time"] = json!(time);
                }
                if let Some(sub) = &e.subresource {
                    entry["subresource"] = json!(sub);
                }
                entry
            })
            .collect();
        meta.insert("managedFields".to_owned(), Value::Array(entries));
    }

    /// The fields `manager` owns through `operation`.
    pub fn owned_by(&self, manager: &Manager<'_>, operation: Operation) -> Option<&FieldSet> {
        self.entries
            .iter()
            .find(|e| e.is(manager, operation))
            .map(|e| &e.fields)
    }

    /// Ownership after a write that turned `old` into `new`: the writer takes every field
    /// whose value it changed, and nobody keeps a field that no longer exists.
    pub fn update(
        &mut self,
        schema: Option<&'static Schema>,
        old: &Value,
        new: &Value,
        manager: &Manager<'_>,
        with_status: bool,
    ) {
        let changed: FieldSet = paths_of(new, schema, with_status)
            .into_iter()
            .filter(|p| {
                let before = paths::lookup(old, p);
                if paths::is_element(p) {
                    before.is_none()
                } else {
                    before != paths::lookup(new, p)
                }
            })
            .collect();
        for entry in &mut self.entries {
            entry
                .fields
                .retain(|p| !changed.contains(p) && paths::lookup(new, p).is_some());
        }
        self.take(manager, Operation::Update, changed, false);
    }

    /// Server-side apply of `config` onto `live` (`None` when the object is new): returns
    /// the merged object with the applier's dropped fields pruned, and records ownership.
    ///
    /// # Errors
    ///
    /// [`ApplyError::Conflicts`] when another manager owns a field the configuration would
    /// change and `force` is false; [`ApplyError::Merge`] when the configuration cannot be
    /// merged into the object.
    pub fn apply(
        &mut self,
        schema: Option<&'static Schema>,
        live: Option<&Value>,
        config: &Value,
        manager: &Manager<'_>,
        force: bool,
        with_status: bool,
    ) -> Result<Value, ApplyError> {
        let applied = paths_of(config, schema, with_status);
        let empty = json!({});
        let live = live.unwrap_or(&empty);

        let mut conflicts = Vec::new();
        for (i, entry) in self.entries.iter().enumerate() {
            if entry.is(manager, Operation::Apply) {
                continue;
            }
            for path in entry.fields.intersection(&applied) {
                // Owning the same element of a list is no conflict; its fields may be.
                if !paths::is_element(path)
                    && paths::lookup(live, path) != paths::lookup(config, path)
                {
                    conflicts.push((i, path.clone()));
                }
            }
        }
        if !conflicts.is_empty() {
            if !force {
                return Err(ApplyError::Conflicts(
                    conflicts
                        .iter()
                        .map(|(i, path)| Conflict {
                            manager: self.entries[*i].describe(),
                            field: paths::display(path),
                        })
                        .collect(),
                ));
            }
            for (i, path) in &conflicts {
                self.entries[*i].fields.remove(path);
            }
        }

        let mut merged = match schema {
            Some(schema) => slipway_patch::strategic_merge(live, config, schema)
                .map_err(|e| ApplyError::Merge(e.to_string()))?,
            None => slipway_patch::merge_patch(live, config)
                .map_err(|e| ApplyError::Merge(e.to_string()))?,
        };

        let others: FieldSet = self
            .entries
            .iter()
            .filter(|e| !e.is(manager, Operation::Apply))
            .flat_map(|e| e.fields.iter().cloned())
            .collect();
        let owned_elsewhere =
            |path: &Path| others.iter().any(|o| o.starts_with(path)) || applied.contains(path);
        if let Some(previous) = self.owned_by(manager, Operation::Apply) {
            let mut dropped: Vec<&Path> = previous
                .difference(&applied)
                .filter(|p| !owned_elsewhere(p))
                .collect();
            // Shallowest first: a dropped list element goes whole, before its key field would
            // be removed and leave an element nothing can find.
            dropped.sort_by_key(|p| p.len());
            for path in dropped {
                paths::remove(&mut merged, path);
                prune_emptied_parents(&mut merged, path, &owned_elsewhere);
            }
        }

        self.take(manager, Operation::Apply, applied, true);
        Ok(merged)
    }

    /// Gives `manager` the `fields` (adding to an update's, replacing an apply's) and drops
    /// entries left with nothing.
    fn take(
        &mut self,
        manager: &Manager<'_>,
        operation: Operation,
        fields: FieldSet,
        replace: bool,
    ) {
        match self.entries.iter_mut().find(|e| e.is(manager, operation)) {
            Some(entry) => {
                let before = entry.fields.clone();
                if replace {
                    entry.fields = fields;
                } else {
                    entry.fields.extend(fields);
                }
                if entry.fields != before {
                    entry.time = Some(manager.time.to_owned());
                    entry.api_version = manager.api_version.to_owned();
                }
            }
            None if !fields.is_empty() => self.entries.push(Entry {
                manager: manager.name.to_owned(),
                operation,
                api_version: manager.api_version.to_owned(),
                time: Some(manager.time.to_owned()),
                subresource: manager.subresource.map(str::to_owned),
                fields,
            }),
            None => {}
        }
        self.entries.retain(|e| !e.fields.is_empty());
    }
}

/// After `path` was removed: an object or list above it that is now empty and that nobody
/// owns goes too, so dropping a manager's last label leaves no `labels: {}` behind.
fn prune_emptied_parents(object: &mut Value, path: &[String], owned: &impl Fn(&Path) -> bool) {
    for len in (1..path.len()).rev() {
        let parent = path[..len].to_vec();
        let empty = match paths::lookup(object, &parent) {
            Some(Value::Object(map)) => map.is_empty(),
            Some(Value::Array(items)) => items.is_empty(),
            _ => false,
        };
        if !empty || owned(&parent) {
            return;
        }
        paths::remove(object, &parent);
    }
}

#[cfg(test)]
mod tests;
