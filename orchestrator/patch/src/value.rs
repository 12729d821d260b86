//! JSON value comparison shared by the patch algorithms, and the nesting limit they enforce.

use serde_json::Value;

/// Deepest object/array nesting a patch algorithm descends into before giving up with an
/// error; deeper input is almost certainly hostile and recursion must not overflow the stack.
pub const MAX_DEPTH: usize = 256;

/// JSON equality as RFC 6902 `test` defines it: numbers compare by value (so `1` equals `1.0`),
/// objects compare regardless of member order.
///
/// Iterative, so arbitrarily deep values cannot overflow the stack.
pub fn json_eq(a: &Value, b: &Value) -> bool {
    let mut pending = vec![(a, b)];
    while let Some((a, b)) = pending.pop() {
        match (a, b) {
            (Value::Null, Value::Null) => {}
            (Value::Bool(x), Value::Bool(y)) if x == y => {}
            (Value::String(x), Value::String(y)) if x == y => {}
            (Value::Number(x), Value::Number(y)) if numbers_eq(x, y) => {}
            (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
                pending.extend(x.iter().zip(y));
            }
            (Value::Object(x), Value::Object(y)) if x.len() == y.len() => {
                for (key, xv) in x {
                    let Some(yv) = y.get(key) else {
                        return false;
                    };
                    pending.push((xv, yv));
                }
            }
            _ => return false,
        }
    }
    true
}

fn numbers_eq(x: &serde_json::Number, y: &serde_json::Number) -> bool {
    // Exact integer comparison first: converting large integers to f64 would make distinct
    // values compare equal.
    if let (Some(a), Some(b)) = (x.as_i64(), y.as_i64()) {
        return a == b;
    }
    if let (Some(a), Some(b)) = (x.as_u64(), y.as_u64()) {
        return a == b;
    }
    match (x.as_f64(), y.as_f64()) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::json_eq;
    use serde_json::json;

    #[test]
    fn equality_table() {
        let cases = [
            (json!(1), json!(1.0), true),
            (json!(1), json!(2), false),
            (json!(-3), json!(-3.0), true),
            (json!(u64::MAX), json!(u64::MAX), true),
            (json!("10"), json!(10), false),
            (
                json!({"a": 1, "b": [1, 2]}),
                json!({"b": [1.0, 2], "a": 1}),
                true,
            ),
            (json!({"a": 1}), json!({"a": 1, "b": null}), false),
            (json!([1, 2]), json!([2, 1]), false),
            (json!(null), json!(false), false),
            (json!({"a": {"b": "c"}}), json!({"a": {"b": "c"}}), true),
        ];
        for (a, b, expected) in cases {
            assert_eq!(json_eq(&a, &b), expected, "{a} vs {b}");
        }
    }
}
