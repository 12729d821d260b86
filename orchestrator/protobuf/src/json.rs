//! The field rules that turn prost structs into Kubernetes JSON, shared by every generated impl.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{Map, Value};

use crate::InvalidValue;

/// The Kubernetes JSON of one protobuf value.
pub(crate) trait Json {
    fn json(&self) -> Result<Value, InvalidValue>;
}

impl Json for String {
    fn json(&self) -> Result<Value, InvalidValue> {
        Ok(Value::String(self.clone()))
    }
}

impl Json for bool {
    fn json(&self) -> Result<Value, InvalidValue> {
        Ok(Value::Bool(*self))
    }
}

impl Json for i32 {
    fn json(&self) -> Result<Value, InvalidValue> {
        Ok(Value::from(*self))
    }
}

impl Json for i64 {
    fn json(&self) -> Result<Value, InvalidValue> {
        Ok(Value::from(*self))
    }
}

impl Json for f64 {
    fn json(&self) -> Result<Value, InvalidValue> {
        // JSON has no NaN or infinity; Go's encoder refuses them too.
        serde_json::Number::from_f64(*self)
            .map(Value::Number)
            .ok_or(InvalidValue::NonFiniteNumber)
    }
}

/// `bytes` fields: Go's encoding/json writes `[]byte` as standard base64.
impl Json for Vec<u8> {
    fn json(&self) -> Result<Value, InvalidValue> {
        Ok(Value::String(
            base64::engine::general_purpose::STANDARD.encode(self),
        ))
    }
}

/// A protobuf field as it came off the wire: `None` when the wire did not carry it (an
/// unset optional, or a repeated or map field with no entries, which protobuf cannot tell
/// from an empty one).
pub(crate) trait Field {
    fn field(&self) -> Result<Option<Value>, InvalidValue>;
}

impl<T: Json> Field for Option<T> {
    fn field(&self) -> Result<Option<Value>, InvalidValue> {
        self.as_ref().map(Json::json).transpose()
    }
}

impl<T: Json> Field for Vec<T> {
    fn field(&self) -> Result<Option<Value>, InvalidValue> {
        if self.is_empty() {
            return Ok(None);
        }
        let items = self.iter().map(Json::json).collect::<Result<_, _>>()?;
        Ok(Some(Value::Array(items)))
    }
}

impl<T: Json> Field for BTreeMap<String, T> {
    fn field(&self) -> Result<Option<Value>, InvalidValue> {
        if self.is_empty() {
            return Ok(None);
        }
        let entries = self
            .iter()
            .map(|(k, v)| Ok((k.clone(), v.json()?)))
            .collect::<Result<Map<_, _>, InvalidValue>>()?;
        Ok(Some(Value::Object(entries)))
    }
}

/// What a required (non-omitempty) Go field holds when the wire did not carry it, so that
/// it is written the way k8s-openapi writes its non-`Option` fields.
#[derive(Clone, Copy)]
pub(crate) enum Zero {
    Str,
    Int,
    Bool,
    Obj,
    Arr,
    Null,
}

impl Zero {
    fn value(self) -> Value {
        match self {
            Self::Str => Value::String(String::new()),
            Self::Int => Value::from(0),
            Self::Bool => Value::Bool(false),
            Self::Obj => Value::Object(Map::new()),
            Self::Arr => Value::Array(Vec::new()),
            Self::Null => Value::Null,
        }
    }
}

/// Go's omitempty zero values, plus the empty object: Go's gogo-protobuf marshaller writes
/// every non-pointer field, set or not, so an unset value struct arrives as an empty message
/// and is dropped like k8s-openapi drops a `None`.
fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

/// A JSON object under construction, one rule per Go field kind.
#[derive(Default)]
pub(crate) struct Obj(Map<String, Value>);

impl Obj {
    /// A Go pointer, slice or map field: present means set, even at zero (`replicas: 0`,
    /// `runAsUser: 0`, `emptyDir: {}`).
    pub(crate) fn pointer(&mut self, name: &str, field: &impl Field) -> Result<(), InvalidValue> {
        if let Some(value) = field.field()? {
            self.0.insert(name.to_owned(), value);
        }
        Ok(())
    }

    /// A Go value field tagged omitempty: its zero value means unset.
    pub(crate) fn omit_empty(
        &mut self,
        name: &str,
        field: &impl Field,
    ) -> Result<(), InvalidValue> {
        match field.field()? {
            Some(value) if !is_empty(&value) => {
                self.0.insert(name.to_owned(), value);
            }
            _ => {}
        }
        Ok(())
    }

    /// A Go value field without omitempty: always written.
    pub(crate) fn required(
        &mut self,
        name: &str,
        field: &impl Field,
        zero: Zero,
    ) -> Result<(), InvalidValue> {
        let value = field.field()?.unwrap_or_else(|| zero.value());
        self.0.insert(name.to_owned(), value);
        Ok(())
    }

    /// A Go embedded struct tagged `json:",inline"`: its fields belong to this object.
    pub(crate) fn inline(&mut self, field: &impl Field) -> Result<(), InvalidValue> {
        if let Some(Value::Object(fields)) = field.field()? {
            self.0.extend(fields);
        }
        Ok(())
    }
}

impl From<Obj> for Value {
    fn from(obj: Obj) -> Self {
        Value::Object(obj.0)
    }
}
