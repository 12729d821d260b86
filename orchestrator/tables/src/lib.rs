//! Server-side `meta.k8s.io/v1` Tables: what the API server answers when `kubectl get`
//! asks for `application/json;as=Table;v=v1;g=meta.k8s.io`.
//!
//! kubectl prints the cells it is given and computes nothing itself, so the columns and
//! cells here follow Kubernetes 1.32's printers (`pkg/printers/internalversion`) and the
//! apiserver's default table convertor for kinds without a printer. Objects are read as
//! JSON in their v1 wire shape and defensively: a missing or malformed field prints the
//! way Kubernetes prints the zero value, never a panic.
//!
//! Start with [`table`]; [`IncludeObject`] parses the `includeObject` query parameter.

mod access;
mod columns;
mod printers;
mod selector;
mod time;

use std::fmt;
use std::str::FromStr;
use std::time::SystemTime;

use serde_json::{Map, Value, json};

pub use crate::columns::ColumnDefinition;
use crate::printers::Printer;
pub use crate::time::{age_since, human_duration};

/// What each row's `object` carries, from the `includeObject` query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncludeObject {
    /// No `object`: the row is cells only.
    None,
    /// A `PartialObjectMetadata` holding the object's metadata; kubectl needs it for the
    /// NAMESPACE column of `-A`, `--show-labels` and `-L`.
    #[default]
    Metadata,
    /// The whole object, which `kubectl get --sort-by` asks for.
    Object,
}

impl IncludeObject {
    /// The query parameter's value; absent or empty means the default, `Metadata`.
    pub fn from_query(value: Option<&str>) -> Result<Self, InvalidIncludeObject> {
        value.map_or(Ok(Self::default()), str::parse)
    }
}

impl FromStr for IncludeObject {
    type Err = InvalidIncludeObject;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "None" => Ok(Self::None),
            "Metadata" | "" => Ok(Self::Metadata),
            "Object" => Ok(Self::Object),
            other => Err(InvalidIncludeObject {
                value: other.to_owned(),
            }),
        }
    }
}

/// An `includeObject` value other than `None`, `Metadata` or `Object`; the API server
/// answers it with 400 Bad Request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidIncludeObject {
    value: String,
}

impl InvalidIncludeObject {
    /// The rejected value.
    pub fn value(&self) -> &str {
        &self.value
    }
}

impl fmt::Display for InvalidIncludeObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "includeObject: Unsupported value: {:?}: supported values: \"Metadata\", \"None\", \"Object\"",
            self.value
        )
    }
}

impl std::error::Error for InvalidIncludeObject {}

/// The columns for objects of `kind` in API group `group` (`""` for core).
pub fn column_definitions(group: &str, kind: &str) -> &'static [ColumnDefinition] {
    Printer::for_kind(group, kind).columns()
}

/// The cells of one object's row, one per entry of [`column_definitions`].
pub fn row_cells(group: &str, kind: &str, object: &Value, now: SystemTime) -> Vec<Value> {
    Printer::for_kind(group, kind).cells(object, now)
}

/// The Table for `objects` of `kind` in API group `group` (`""` for core).
///
/// `list_metadata` is the list's metadata; its `resourceVersion`, `continue` and
/// `remainingItemCount` are carried over (pass `Value::Null` for a single object). Ages
/// are measured up to `now`. A watch event's object is this with one object.
pub fn table(
    group: &str,
    kind: &str,
    objects: &[Value],
    list_metadata: Value,
    include: IncludeObject,
    now: SystemTime,
) -> Value {
    let printer = Printer::for_kind(group, kind);
    let columns: Vec<Value> = printer
        .columns()
        .iter()
        .map(ColumnDefinition::to_json)
        .collect();
    let rows: Vec<Value> = objects
        .iter()
        .map(|object| row(printer, object, include, now))
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": table_metadata(list_metadata),
        "columnDefinitions": columns,
        "rows": rows,
    })
}

fn row(printer: Printer, object: &Value, include: IncludeObject, now: SystemTime) -> Value {
    let mut row = Map::new();
    row.insert("cells".to_owned(), Value::Array(printer.cells(object, now)));
    if let Some(conditions) = printer.row_conditions(object) {
        row.insert("conditions".to_owned(), conditions);
    }
    match include {
        IncludeObject::None => {}
        IncludeObject::Metadata => {
            let metadata = object.get("metadata").filter(|m| m.is_object()).cloned();
            row.insert(
                "object".to_owned(),
                json!({
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": metadata.unwrap_or_else(|| json!({})),
                }),
            );
        }
        IncludeObject::Object => {
            row.insert("object".to_owned(), object.clone());
        }
    }
    Value::Object(row)
}

/// The list metadata a Table keeps: the `ListMeta` fields that page and resume a list.
fn table_metadata(list_metadata: Value) -> Value {
    let Value::Object(mut source) = list_metadata else {
        return json!({});
    };
    let kept: Map<String, Value> = ["resourceVersion", "continue", "remainingItemCount"]
        .into_iter()
        .filter_map(|key| {
            source
                .remove(key)
                .filter(|v| !v.is_null())
                .map(|v| (key.to_owned(), v))
        })
        .collect();
    Value::Object(kept)
}
