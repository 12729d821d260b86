//! The apimachinery types whose JSON is a scalar or embedded JSON rather than an object.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1::{FieldsV1, MicroTime, Time};
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use crate::InvalidValue;
use crate::json::Json;

impl Json for Quantity {
    fn json(&self) -> Result<Value, InvalidValue> {
        Ok(Value::String(self.string.clone().unwrap_or_default()))
    }
}

impl Json for IntOrString {
    fn json(&self) -> Result<Value, InvalidValue> {
        match self.r#type.unwrap_or(0) {
            0 => Ok(Value::from(self.int_val.unwrap_or(0))),
            1 => Ok(Value::String(self.str_val.clone().unwrap_or_default())),
            other => Err(InvalidValue::IntOrStringType(other)),
        }
    }
}

/// Go marshals a zero `metav1.Time` as an empty message and writes it to JSON as `null`,
/// which `omit_empty` then drops.
fn timestamp(seconds: Option<i64>, nanos: Option<i32>) -> Result<Option<Timestamp>, InvalidValue> {
    let (seconds, nanos) = (seconds.unwrap_or(0), nanos.unwrap_or(0));
    if seconds == 0 && nanos == 0 {
        return Ok(None);
    }
    Timestamp::new(seconds, nanos)
        .map(Some)
        .map_err(|_| InvalidValue::InvalidTime { seconds, nanos })
}

/// RFC 3339 at second precision, as `metav1.Time` marshals.
impl Json for Time {
    fn json(&self) -> Result<Value, InvalidValue> {
        Ok(match timestamp(self.seconds, self.nanos)? {
            Some(ts) => Value::String(ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()),
            None => Value::Null,
        })
    }
}

/// RFC 3339 with exactly six fractional digits, as `metav1.MicroTime` marshals.
impl Json for MicroTime {
    fn json(&self) -> Result<Value, InvalidValue> {
        Ok(match timestamp(self.seconds, self.nanos)? {
            Some(ts) => {
                let civil = ts.to_zoned(TimeZone::UTC).datetime();
                let micros = civil.subsec_nanosecond() / 1000;
                Value::String(format!(
                    "{}.{micros:06}Z",
                    civil.strftime("%Y-%m-%dT%H:%M:%S")
                ))
            }
            None => Value::Null,
        })
    }
}

/// managedFields' `fieldsV1` is JSON carried as bytes.
impl Json for FieldsV1 {
    fn json(&self) -> Result<Value, InvalidValue> {
        match self.raw.as_deref() {
            None | Some([]) => Ok(Value::Null),
            Some(raw) => {
                serde_json::from_slice(raw).map_err(|e| InvalidValue::EmbeddedJson(e.to_string()))
            }
        }
    }
}
