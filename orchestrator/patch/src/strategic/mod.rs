//! Strategic merge patch (`application/strategic-merge-patch+json`) as the Kubernetes API
//! server applies it: JSON merge patch, except that tagged lists merge by key or as sets, and
//! the `$patch`, `$retainKeys`, `$setElementOrder/…` and `$deleteFromPrimitiveList/…`
//! directives steer the merge.
//!
//! The algorithm follows k8s.io/apimachinery/pkg/util/strategicpatch (server side: parallel
//! lists merged, unmatched nulls dropped), including its list ordering: elements named in the
//! patch come in patch order, the others keep their relative live order and are woven in
//! around them, and `$setElementOrder` has the last word. Deliberate differences, each more
//! lenient: fields missing from the schema merge as untagged fields instead of failing, and
//! `$patch: merge` is accepted as an explicit request for the default merge.

mod schema;

use serde_json::{Map, Value};
use thiserror::Error;

pub use schema::{Field, PatchStrategy, Schema};

use crate::value::{MAX_DEPTH, json_eq};

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";

/// Why a strategic merge patch was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StrategicMergeError {
    /// The kind has no patch metadata (custom resources, kinds slipway does not serve).
    #[error("strategic merge patch is not supported for {kind} ({api_version})")]
    Unsupported { api_version: String, kind: String },
    /// The original object or the patch is not a JSON object.
    #[error("invalid JSON document: the {0} is not a JSON object")]
    NotAnObject(&'static str),
    /// `$patch` has a value other than `replace`, `delete` or `merge`.
    #[error("unknown patch directive {0}")]
    UnknownDirective(String),
    /// A `$setElementOrder` or `$deleteFromPrimitiveList` key lacks its `/<field>` part.
    #[error("invalid directive key {0:?}")]
    InvalidDirectiveKey(String),
    /// `$retainKeys` is not a list, or the patch sets a field the list does not name.
    #[error("invalid patch format of retainKeys: {0}")]
    InvalidRetainKeys(String),
    /// `$setElementOrder/<list>` is malformed or disagrees with the order of the patch list.
    #[error("invalid patch format of setElementOrder list for {list:?}: {reason}")]
    InvalidSetElementOrder { list: String, reason: String },
    /// `$deleteFromPrimitiveList/<list>` names a list of objects.
    #[error("invalid patch format of primitive list {0:?}: elements must be primitives")]
    InvalidPrimitiveList(String),
    /// A list element lacks the merge key its list is merged by.
    #[error("an element of {list:?} does not contain the declared merge key {key:?}")]
    MissingMergeKey { list: String, key: &'static str },
    /// A list of objects whose field declares no merge key cannot merge.
    #[error("cannot merge lists of objects without a merge key in {list:?} of {schema}")]
    NoMergeKey { list: String, schema: &'static str },
    /// Lists of lists cannot merge.
    #[error("lists of lists are not supported ({0:?})")]
    ListOfLists(String),
    /// A merged list mixes element types.
    #[error("list element types are not identical in {0:?}")]
    MixedElementTypes(String),
    /// A `$setElementOrder` directive applies to a field that is not a list.
    #[error("{0:?} is not a list")]
    NotAList(String),
    /// The patch nests deeper than [`MAX_DEPTH`].
    #[error("strategic merge patch nests deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

impl StrategicMergeError {
    /// HTTP status the API server answers with: 415 for kinds without patch metadata (as
    /// Kubernetes answers for custom resources), 400 for the malformed documents and directive
    /// formats Kubernetes reports as Bad Request, 422 for every other patch that cannot apply
    /// (Kubernetes reports some of those as 500; they are the client's fault).
    pub fn http_status(&self) -> u16 {
        match self {
            Self::Unsupported { .. } => 415,
            Self::NotAnObject(_)
            | Self::InvalidDirectiveKey(_)
            | Self::InvalidRetainKeys(_)
            | Self::InvalidSetElementOrder { .. }
            | Self::InvalidPrimitiveList(_) => 400,
            _ => 422,
        }
    }
}

/// The patch metadata of a kind slipway serves, or [`StrategicMergeError::Unsupported`].
pub fn schema_for(api_version: &str, kind: &str) -> Result<&'static Schema, StrategicMergeError> {
    schema::lookup_kind(api_version, kind).ok_or_else(|| StrategicMergeError::Unsupported {
        api_version: api_version.to_owned(),
        kind: kind.to_owned(),
    })
}

/// Applies a strategic merge patch to `original`, an object of the kind `schema` describes.
pub fn strategic_merge(
    original: &Value,
    patch: &Value,
    schema: &Schema,
) -> Result<Value, StrategicMergeError> {
    let Value::Object(original) = original else {
        return Err(StrategicMergeError::NotAnObject("original object"));
    };
    let Value::Object(patch) = patch else {
        return Err(StrategicMergeError::NotAnObject("patch"));
    };
    merge_map(original.clone(), patch, schema, 0).map(Value::Object)
}

/// [`schema_for`] then [`strategic_merge`].
pub fn strategic_merge_for(
    api_version: &str,
    kind: &str,
    original: &Value,
    patch: &Value,
) -> Result<Value, StrategicMergeError> {
    strategic_merge(original, patch, schema_for(api_version, kind)?)
}

type Result<T, E = StrategicMergeError> = std::result::Result<T, E>;

fn descend(depth: usize) -> Result<usize> {
    if depth >= MAX_DEPTH {
        Err(StrategicMergeError::TooDeep)
    } else {
        Ok(depth + 1)
    }
}

/// The value of `$patch` in `map`, if any.
fn directive(map: &Map<String, Value>) -> Result<Option<Directive>> {
    match map.get(DIRECTIVE) {
        None => Ok(None),
        Some(Value::String(s)) if s == "replace" => Ok(Some(Directive::Replace)),
        Some(Value::String(s)) if s == "delete" => Ok(Some(Directive::Delete)),
        Some(Value::String(s)) if s == "merge" => Ok(Some(Directive::Merge)),
        Some(other) => Err(StrategicMergeError::UnknownDirective(other.to_string())),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Directive {
    Replace,
    Delete,
    Merge,
}

/// The list name after `prefix/` in a directive key.
fn directive_target<'k>(key: &'k str, prefix: &str) -> Result<&'k str> {
    match key.split_once('/') {
        Some((head, field)) if head == prefix => Ok(field),
        _ => Err(StrategicMergeError::InvalidDirectiveKey(key.to_owned())),
    }
}

fn merge_map(
    mut original: Map<String, Value>,
    patch: &Map<String, Value>,
    schema: &Schema,
    depth: usize,
) -> Result<Map<String, Value>> {
    let depth = descend(depth)?;
    match directive(patch)? {
        Some(Directive::Delete) => return Ok(Map::new()),
        Some(Directive::Replace) => original = Map::new(),
        Some(Directive::Merge) | None => {}
    }
    apply_retain_keys(&mut original, patch)?;

    let mut ordered_lists = Vec::new();
    for (key, order) in patch {
        if key.starts_with(SET_ELEMENT_ORDER) {
            let list = directive_target(key, SET_ELEMENT_ORDER)?;
            apply_element_order(&mut original, patch, list, order, schema, depth)?;
            ordered_lists.push(list);
        }
    }

    let mut delete_lists = Vec::new();
    for (key, value) in patch {
        if key == DIRECTIVE
            || key == RETAIN_KEYS
            || key.starts_with(SET_ELEMENT_ORDER)
            || ordered_lists.contains(&key.as_str())
        {
            continue;
        }
        if key.starts_with(DELETE_FROM_PRIMITIVE_LIST) {
            delete_lists.push((directive_target(key, DELETE_FROM_PRIMITIVE_LIST)?, value));
            continue;
        }
        if value.is_null() {
            original.remove(key);
            continue;
        }
        let (strategy, sub) = schema.lookup(key);
        let Some(slot) = original.get_mut(key) else {
            if let Some(value) = materialize(value, sub, depth)? {
                original.insert(key.clone(), value);
            }
            continue;
        };
        let merged = match (std::mem::take(slot), value) {
            (Value::Object(live), Value::Object(value)) => {
                Some(Value::Object(merge_map(live, value, sub, depth)?))
            }
            (Value::Array(live), Value::Array(value)) => Some(Value::Array(merge_list_field(
                live, value, key, strategy, sub, depth,
            )?)),
            _ => materialize(value, sub, depth)?,
        };
        match merged {
            Some(merged) => *slot = merged,
            None => {
                original.remove(key);
            }
        }
    }

    // Deletions run after additions, as they do when kubectl pairs them with
    // `$setElementOrder`, so a patch that adds and deletes the same item ends without it.
    for (list, value) in delete_lists {
        match (original.get_mut(list), value) {
            (_, Value::Null) => {
                original.remove(list);
            }
            (Some(Value::Array(live)), Value::Array(doomed)) => {
                if element_kind(live, doomed, list)? == Some(Kind::Object) {
                    return Err(StrategicMergeError::InvalidPrimitiveList(list.to_owned()));
                }
                live.retain(|item| !doomed.iter().any(|d| json_eq(d, item)));
            }
            _ => {}
        }
    }
    Ok(original)
}

/// `$retainKeys`: drops live fields the list does not name; every field the patch sets must
/// be named.
fn apply_retain_keys(original: &mut Map<String, Value>, patch: &Map<String, Value>) -> Result<()> {
    let Some(retain) = patch.get(RETAIN_KEYS) else {
        return Ok(());
    };
    let Value::Array(retain) = retain else {
        return Err(StrategicMergeError::InvalidRetainKeys(
            "$retainKeys is not a list".to_owned(),
        ));
    };
    let retained = |key: &str| retain.iter().any(|k| k.as_str() == Some(key));
    for (key, value) in patch {
        let directive_key = key == DIRECTIVE
            || key == RETAIN_KEYS
            || key.starts_with(SET_ELEMENT_ORDER)
            || key.starts_with(DELETE_FROM_PRIMITIVE_LIST);
        if !directive_key && !value.is_null() && !retained(key) {
            return Err(StrategicMergeError::InvalidRetainKeys(format!(
                "the patch sets {key:?}, which $retainKeys does not list"
            )));
        }
    }
    original.retain(|key, _| retained(key));
    Ok(())
}

/// Turns a patch value that has no live counterpart into plain data: directives are resolved
/// against nothing and nulls dropped. `None` means the field ends up absent.
fn materialize(value: &Value, schema: &Schema, depth: usize) -> Result<Option<Value>> {
    match value {
        Value::Null => Ok(None),
        Value::Object(map) => {
            if directive(map)? == Some(Directive::Delete) {
                return Ok(None);
            }
            Ok(Some(Value::Object(merge_map(
                Map::new(),
                map,
                schema,
                depth,
            )?)))
        }
        Value::Array(items) => Ok(Some(Value::Array(materialize_list(items, schema, depth)?))),
        scalar => Ok(Some(scalar.clone())),
    }
}

/// A patch list taken as is: directive elements are dropped, as Kubernetes drops them.
fn materialize_list(items: &[Value], schema: &Schema, depth: usize) -> Result<Vec<Value>> {
    let depth = descend(depth)?;
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Value::Object(map) if map.contains_key(DIRECTIVE) => {}
            Value::Object(map) => {
                out.push(Value::Object(merge_map(Map::new(), map, schema, depth)?));
            }
            Value::Array(inner) => out.push(Value::Array(materialize_list(inner, schema, depth)?)),
            other => out.push(other.clone()),
        }
    }
    Ok(out)
}

fn merge_list_field(
    live: Vec<Value>,
    patch: &[Value],
    list: &str,
    strategy: PatchStrategy,
    schema: &Schema,
    depth: usize,
) -> Result<Vec<Value>> {
    match strategy {
        PatchStrategy::Merge { key } => merge_list(live, patch, list, key, schema, depth),
        PatchStrategy::Replace => materialize_list(patch, schema, depth),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Null,
    Bool,
    Number,
    String,
    Object,
}

/// The common element kind of the lists, `None` when they are all empty.
fn element_kind(a: &[Value], b: &[Value], list: &str) -> Result<Option<Kind>> {
    let mut kind = None;
    for item in a.iter().chain(b) {
        let this = match item {
            Value::Null => Kind::Null,
            Value::Bool(_) => Kind::Bool,
            Value::Number(_) => Kind::Number,
            Value::String(_) => Kind::String,
            Value::Object(_) => Kind::Object,
            Value::Array(_) => return Err(StrategicMergeError::ListOfLists(list.to_owned())),
        };
        match kind {
            None => kind = Some(this),
            Some(k) if k != this => {
                return Err(StrategicMergeError::MixedElementTypes(list.to_owned()));
            }
            Some(_) => {}
        }
    }
    Ok(kind)
}

/// Merges a list tagged `patchStrategy:"merge"`.
fn merge_list(
    live: Vec<Value>,
    patch: &[Value],
    list: &str,
    key: Option<&'static str>,
    schema: &Schema,
    depth: usize,
) -> Result<Vec<Value>> {
    let depth = descend(depth)?;
    match element_kind(&live, patch, list)? {
        None => Ok(live),
        Some(Kind::Object) => {
            let Some(key) = key else {
                return Err(StrategicMergeError::NoMergeKey {
                    list: list.to_owned(),
                    schema: schema.name(),
                });
            };
            let patch: Vec<&Map<String, Value>> =
                patch.iter().filter_map(Value::as_object).collect();
            merge_object_list(live, &patch, list, key, schema, depth)
        }
        Some(_) => {
            let mut merged: Vec<Value> = Vec::with_capacity(live.len() + patch.len());
            for item in live.iter().chain(patch) {
                if !merged.iter().any(|m| json_eq(m, item)) {
                    merged.push(item.clone());
                }
            }
            let (from_patch, live_only) = partition(merged, patch, None, list)?;
            Ok(normalize_order(from_patch, live_only, patch, &live, None))
        }
    }
}

fn merge_object_list(
    mut live: Vec<Value>,
    patch: &[&Map<String, Value>],
    list: &str,
    key: &'static str,
    schema: &Schema,
    depth: usize,
) -> Result<Vec<Value>> {
    let missing_key = || StrategicMergeError::MissingMergeKey {
        list: list.to_owned(),
        key,
    };
    let mut plain = Vec::with_capacity(patch.len());
    let mut replace = false;
    for &map in patch {
        match directive(map)? {
            Some(Directive::Delete) => {
                let doomed = map.get(key).ok_or_else(missing_key)?;
                live.retain(|l| !l.get(key).is_some_and(|v| json_eq(v, doomed)));
            }
            Some(Directive::Replace) => replace = true,
            Some(Directive::Merge) | None => plain.push(map),
        }
    }
    if replace {
        // `$patch: replace` in a list: the list becomes exactly the other patch elements.
        let items = plain
            .into_iter()
            .cloned()
            .map(Value::Object)
            .collect::<Vec<_>>();
        return materialize_list(&items, schema, depth);
    }

    let live_order = live.clone();
    for map in &plain {
        let wanted = map.get(key).ok_or_else(missing_key)?;
        let found = live
            .iter()
            .position(|l| l.get(key).is_some_and(|v| json_eq(v, wanted)));
        match found {
            Some(index) => {
                if let Value::Object(existing) = &mut live[index] {
                    *existing = merge_map(std::mem::take(existing), map, schema, depth)?;
                }
            }
            None => live.push(Value::Object(merge_map(Map::new(), map, schema, depth)?)),
        }
    }
    let patch_order: Vec<Value> = plain.into_iter().cloned().map(Value::Object).collect();
    let (from_patch, live_only) = partition(live, &patch_order, Some(key), list)?;
    Ok(normalize_order(
        from_patch,
        live_only,
        &patch_order,
        &live_order,
        Some(key),
    ))
}

/// What identifies a list element: its merge key value, or the element itself.
fn identity<'v>(item: &'v Value, key: Option<&str>) -> Option<&'v Value> {
    match key {
        Some(key) => item.get(key),
        None => Some(item),
    }
}

fn position_in(list: &[Value], item: &Value, key: Option<&str>) -> Option<usize> {
    let id = identity(item, key)?;
    list.iter()
        .position(|other| identity(other, key).is_some_and(|o| json_eq(o, id)))
}

/// Splits `merged` into the elements named by `names` and the others, each in merged order.
fn partition(
    merged: Vec<Value>,
    names: &[Value],
    key: Option<&'static str>,
    list: &str,
) -> Result<(Vec<Value>, Vec<Value>)> {
    let mut named = Vec::new();
    let mut others = Vec::new();
    for item in merged {
        if let Some(key) = key
            && item.get(key).is_none()
        {
            return Err(StrategicMergeError::MissingMergeKey {
                list: list.to_owned(),
                key,
            });
        }
        if position_in(names, &item, key).is_some() {
            named.push(item);
        } else {
            others.push(item);
        }
    }
    Ok((named, others))
}

/// Orders a merged list: `from_patch` sorted by `patch_order`, `live_only` by `live_order`,
/// then each live-only element placed before the first patch element that comes after it in
/// the live list, so both relative orders survive.
fn normalize_order(
    mut from_patch: Vec<Value>,
    mut live_only: Vec<Value>,
    patch_order: &[Value],
    live_order: &[Value],
    key: Option<&str>,
) -> Vec<Value> {
    let rank = |order: &[Value], item: &Value| position_in(order, item, key).unwrap_or(usize::MAX);
    from_patch.sort_by_cached_key(|item| rank(patch_order, item));
    live_only.sort_by_cached_key(|item| rank(live_order, item));

    let mut out = Vec::with_capacity(from_patch.len() + live_only.len());
    let mut left = live_only.into_iter().peekable();
    let mut right = from_patch.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (Some(l), Some(r)) => match (
                position_in(live_order, l, key),
                position_in(live_order, r, key),
            ) {
                (Some(li), Some(ri)) => li < ri,
                _ => false,
            },
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next);
    }
    out
}

/// Handles `$setElementOrder/<list>`: merges the patch list (if any) into the live one, then
/// orders the result by the directive.
fn apply_element_order(
    original: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    list: &str,
    order: &Value,
    schema: &Schema,
    depth: usize,
) -> Result<()> {
    let bad_order = |reason: &str| StrategicMergeError::InvalidSetElementOrder {
        list: list.to_owned(),
        reason: reason.to_owned(),
    };
    let Value::Array(order) = order else {
        return Err(bad_order("the directive is not a list"));
    };
    let live = match original.remove(list) {
        None => None,
        Some(Value::Array(items)) => Some(items),
        Some(_) => return Err(StrategicMergeError::NotAList(list.to_owned())),
    };
    let patch_list = match patch.get(list) {
        None => None,
        Some(Value::Array(items)) => Some(items.as_slice()),
        Some(_) => return Err(StrategicMergeError::NotAList(list.to_owned())),
    };
    let (strategy, sub) = schema.lookup(list);
    let merge_key = match strategy {
        PatchStrategy::Merge { key } => key,
        PatchStrategy::Replace => None,
    };
    let live_items = live.as_deref().unwrap_or_default();
    let patch_items = patch_list.unwrap_or_default();
    let key = match element_kind(live_items, patch_items, list)? {
        Some(Kind::Object) | None => merge_key,
        Some(_) => None,
    };
    if let Some(key) = key
        && order.iter().any(|o| o.get(key).is_none())
    {
        return Err(bad_order("an element lacks the merge key"));
    }
    check_patch_follows_order(patch_items, order, key, list)?;

    let live_order = live.clone().unwrap_or_default();
    let merged = match (live, patch_list) {
        (Some(live), None) => live,
        (None, Some(items)) => materialize_list(items, sub, depth)?,
        (Some(live), Some(items)) => merge_list_field(live, items, list, strategy, sub, depth)?,
        (None, None) => return Ok(()),
    };
    let (named, others) = partition(merged, order, key, list)?;
    let ordered = normalize_order(named, others, order, &live_order, key);
    original.insert(list.to_owned(), Value::Array(ordered));
    Ok(())
}

/// The non-deleting patch elements must appear in `$setElementOrder` in the same relative
/// order; anything else means the client built an inconsistent patch.
fn check_patch_follows_order(
    patch: &[Value],
    order: &[Value],
    key: Option<&str>,
    list: &str,
) -> Result<()> {
    let relevant: Vec<&Value> = patch
        .iter()
        .filter(|item| item.get(DIRECTIVE).is_none())
        .collect();
    let mut next = 0;
    for item in relevant {
        let id = identity(item, key);
        let found = order[next..].iter().position(|o| {
            id.is_some_and(|id| identity(o, key).is_some_and(|oid| json_eq(oid, id)))
        });
        match found {
            Some(offset) => next += offset + 1,
            None => {
                return Err(StrategicMergeError::InvalidSetElementOrder {
                    list: list.to_owned(),
                    reason: "the order of the patch list doesn't match $setElementOrder".to_owned(),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
