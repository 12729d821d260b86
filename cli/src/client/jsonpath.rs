//! kubectl's JSONPath templates, the subset `get -o jsonpath=...` and `--sort-by` use:
//! literal text, `{.a.b}`, `{.items[*].metadata.name}` (results joined by spaces), `[N]`,
//! `['key']`, filters `[?(@.type=="Ready")]` with `==`, `!=`, `<`, `>`, `<=` and `>=`,
//! `{range PATH}...{end}`, and `{"\n"}`. As kubectl's `get` does, a missing field prints
//! nothing rather than failing. As client-go's parser, literal text is printed exactly as
//! written (a backslash in it is a backslash); escapes are read only in quoted strings,
//! with Go's rules.

use std::cmp::Ordering;

use serde_json::Value;
use slipway_model::quantity::ParsedQuantity;

/// How deep `{range}`s and filters may nest: far beyond any real template, and shallow
/// enough that parsing and rendering, which recurse, cannot overflow the stack.
const MAX_DEPTH: usize = 32;

/// A parsed template.
#[derive(Debug)]
pub(super) struct Template {
    nodes: Vec<Node>,
}

#[derive(Debug)]
enum Node {
    Text(String),
    Path(Path),
    Range(Path, Vec<Node>),
}

/// A path into a JSON value: from the root (`$`) or from the current value (`.`, `@`).
#[derive(Debug)]
pub(super) struct Path {
    from_root: bool,
    steps: Vec<Step>,
}

#[derive(Debug)]
enum Step {
    Field(String),
    All,
    Index(i64),
    Filter {
        path: Path,
        test: Option<(Op, Value)>,
    },
}

/// A filter's comparison, as client-go's evalFilter knows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    fn parse(text: &str) -> Option<Op> {
        Some(match text {
            "==" => Op::Eq,
            "!=" => Op::Ne,
            "<" => Op::Lt,
            "<=" => Op::Le,
            ">" => Op::Gt,
            ">=" => Op::Ge,
            _ => return None,
        })
    }

    /// Whether `found` passes against `literal`: numbers by value, strings by their text,
    /// booleans for (in)equality only. Values of different types are unequal and unordered.
    fn passes(self, found: &Value, literal: &Value) -> bool {
        let order = match (found, literal) {
            (Value::Number(a), Value::Number(b)) => a
                .as_f64()
                .zip(b.as_f64())
                .and_then(|(a, b)| a.partial_cmp(&b)),
            (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
            (Value::Bool(a), Value::Bool(b)) if a == b => Some(Ordering::Equal),
            _ => None,
        };
        match self {
            Op::Eq => order == Some(Ordering::Equal),
            Op::Ne => order != Some(Ordering::Equal),
            Op::Lt => order == Some(Ordering::Less),
            Op::Le => matches!(order, Some(Ordering::Less | Ordering::Equal)),
            Op::Gt => order == Some(Ordering::Greater),
            Op::Ge => matches!(order, Some(Ordering::Greater | Ordering::Equal)),
        }
    }
}

impl Template {
    /// Parses `text`; the error says what is malformed.
    pub(super) fn parse(text: &str) -> Result<Template, String> {
        // Each open `{range}` with the nodes gathered so far outside it.
        let mut open: Vec<(Path, Vec<Node>)> = Vec::new();
        let mut nodes = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            let Some(start) = rest.find('{') else {
                nodes.push(Node::Text(rest.to_owned()));
                break;
            };
            if start > 0 {
                nodes.push(Node::Text(rest[..start].to_owned()));
            }
            let inside = &rest[start + 1..];
            let end = closing_brace(inside)
                .ok_or_else(|| format!("unclosed action at {:?}", &rest[start..]))?;
            let action = inside[..end].trim();
            rest = &inside[end + 1..];
            if action == "end" {
                let (path, outer) = open.pop().ok_or("{end} without {range}")?;
                let body = std::mem::replace(&mut nodes, outer);
                nodes.push(Node::Range(path, body));
            } else if let Some(path) = action.strip_prefix("range ") {
                if open.len() >= MAX_DEPTH {
                    return Err(format!("{{range}}s nest more than {MAX_DEPTH} deep"));
                }
                open.push((Path::parse(path.trim())?, std::mem::take(&mut nodes)));
            } else if let Some((quote, inside)) = quoted(action) {
                nodes.push(Node::Text(unquote(inside, quote)?));
            } else {
                nodes.push(Node::Path(Path::parse(action)?));
            }
        }
        if !open.is_empty() {
            return Err("{range} without {end}".to_owned());
        }
        Ok(Template { nodes })
    }

    /// The template's text for `root`.
    pub(super) fn render(&self, root: &Value) -> String {
        let mut out = String::new();
        render(&self.nodes, root, root, &mut out);
        out
    }
}

fn render(nodes: &[Node], root: &Value, current: &Value, out: &mut String) {
    for node in nodes {
        match node {
            Node::Text(text) => out.push_str(text),
            Node::Path(path) => {
                let shown: Vec<String> = path.eval(root, current).into_iter().map(text).collect();
                out.push_str(&shown.join(" "));
            }
            Node::Range(path, body) => {
                for item in path.eval(root, current) {
                    render(body, root, item, out);
                }
            }
        }
    }
}

/// A value as a template prints it: strings bare, the rest as compact JSON.
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl Path {
    /// Parses a path; `--sort-by` may wrap it in braces as kubectl allows.
    pub(super) fn parse(text: &str) -> Result<Path, String> {
        Path::parse_nested(text, 0)
    }

    /// Parses a path `depth` filters deep.
    fn parse_nested(text: &str, depth: usize) -> Result<Path, String> {
        if depth > MAX_DEPTH {
            return Err(format!("filters nest more than {MAX_DEPTH} deep"));
        }
        let text = text
            .strip_prefix('{')
            .and_then(|t| t.strip_suffix('}'))
            .unwrap_or(text)
            .trim();
        let bad = |why: &str| format!("bad path {text:?}: {why}");
        let (from_root, mut rest) = match text.as_bytes().first() {
            Some(b'$') => (true, &text[1..]),
            Some(b'@') => (false, &text[1..]),
            Some(b'.' | b'[') => (false, text),
            _ => return Err(bad("a path starts with '.', '$' or '@'")),
        };
        let mut steps = Vec::new();
        while let Some(c) = rest.chars().next() {
            match c {
                '.' if rest.starts_with("..") => return Err(bad("'..' is not supported")),
                '.' => {
                    let (field, after) = field(&rest[1..]);
                    rest = after;
                    match field.as_str() {
                        // `.` alone is the current value.
                        "" if rest.is_empty() => {}
                        "" => return Err(bad("an empty field name")),
                        "*" => steps.push(Step::All),
                        _ => steps.push(Step::Field(field)),
                    }
                }
                '[' => {
                    let end = closing_bracket(rest).ok_or_else(|| bad("unclosed '['"))?;
                    steps.push(Step::parse(&rest[1..end], depth).map_err(|why| bad(&why))?);
                    rest = &rest[end + 1..];
                }
                _ => return Err(bad(&format!("unexpected {c:?}"))),
            }
        }
        Ok(Path { from_root, steps })
    }

    /// Every value the path reaches from `root` or `current`; none when a field is missing.
    pub(super) fn eval<'v>(&self, root: &'v Value, current: &'v Value) -> Vec<&'v Value> {
        let mut values = vec![if self.from_root { root } else { current }];
        for step in &self.steps {
            values = values
                .into_iter()
                .flat_map(|value| step.apply(root, value))
                .collect();
        }
        values
    }
}

impl Step {
    /// A bracketed step's inside, in a path `depth` filters deep: `*`, an index, a quoted
    /// key or `?(filter)`.
    fn parse(inside: &str, depth: usize) -> Result<Step, String> {
        let inside = inside.trim();
        if inside == "*" {
            return Ok(Step::All);
        }
        if let Some((quote, key)) = quoted(inside) {
            return Ok(Step::Field(unquote(key, quote)?));
        }
        if let Some(filter) = inside.strip_prefix("?(").and_then(|f| f.strip_suffix(')')) {
            return filter_step(filter.trim(), depth + 1);
        }
        if inside.contains(':') {
            return Err("slices are not supported".to_owned());
        }
        inside
            .parse()
            .map(Step::Index)
            .map_err(|_| format!("{inside:?} is not *, an index, a 'key' or ?(filter)"))
    }

    fn apply<'v>(&self, root: &'v Value, value: &'v Value) -> Vec<&'v Value> {
        match (self, value) {
            (Step::Field(name), Value::Object(map)) => map.get(name).into_iter().collect(),
            (Step::All, Value::Array(items)) => items.iter().collect(),
            (Step::All, Value::Object(map)) => map.values().collect(),
            (Step::Index(i), Value::Array(items)) => {
                let at = if *i < 0 {
                    i64::try_from(items.len()).ok().map(|n| n + i)
                } else {
                    Some(*i)
                };
                at.and_then(|at| usize::try_from(at).ok())
                    .and_then(|at| items.get(at))
                    .into_iter()
                    .collect()
            }
            (Step::Filter { path, test }, Value::Array(items)) => items
                .iter()
                .filter(|item| {
                    let found = path.eval(root, item);
                    match test {
                        None => !found.is_empty(),
                        // As client-go: an item without the field never passes, `!=` too.
                        Some((op, literal)) => found.iter().any(|v| op.passes(v, literal)),
                    }
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// `@.path` (the field exists) or `@.path OP literal`, `depth` filters deep.
fn filter_step(filter: &str, depth: usize) -> Result<Step, String> {
    let Some((at, op)) = operator(filter) else {
        return Ok(Step::Filter {
            path: Path::parse_nested(filter, depth)?,
            test: None,
        });
    };
    let op_text = &filter[at..at + op];
    let op = Op::parse(op_text).ok_or_else(|| format!("unknown filter operator {op_text:?}"))?;
    let right = filter[at + op_text.len()..].trim();
    let literal = match quoted(right) {
        Some((quote, inside)) => Value::String(unquote(inside, quote)?),
        None => match serde_json::from_str(right) {
            Ok(value @ (Value::Number(_) | Value::Bool(_))) => value,
            _ => {
                return Err(format!(
                    "{right:?} is not a quoted string, number or boolean"
                ));
            }
        },
    };
    Ok(Step::Filter {
        path: Path::parse_nested(filter[..at].trim(), depth)?,
        test: Some((op, literal)),
    })
}

/// Where a filter's operator starts and how long it is: the first run of `!<>=` outside
/// quotes and brackets, so `@.a!="x==y"` and `@['a<b']` read as written.
fn operator(filter: &str) -> Option<(usize, usize)> {
    let mut brackets = 0usize;
    for (i, c) in unquoted(filter) {
        match c {
            '[' => brackets += 1,
            ']' => brackets = brackets.saturating_sub(1),
            '!' | '<' | '>' | '=' if brackets == 0 => {
                let len = filter[i..]
                    .find(|c: char| !matches!(c, '!' | '<' | '>' | '='))
                    .unwrap_or(filter.len() - i);
                return Some((i, len));
            }
            _ => {}
        }
    }
    None
}

/// The characters of `text` outside single or double quotes, with their offsets; quotes
/// and what they hold (backslash escapes included) are skipped.
fn unquoted(text: &str) -> impl Iterator<Item = (usize, char)> + '_ {
    let mut quote = None;
    let mut escaped = false;
    text.char_indices().filter(move |&(_, c)| {
        let Some(q) = quote else {
            if matches!(c, '"' | '\'') {
                quote = Some(c);
                return false;
            }
            return true;
        };
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == q {
            quote = None;
        }
        false
    })
}

/// Sorts `items` by the first value `path` finds in each one's object, as kubectl's
/// `--sort-by`; the error is kubectl's when no object has the field at all (`shown` is
/// the path as the user gave it).
pub(super) fn sort<T>(
    items: &mut [T],
    path: &Path,
    shown: &str,
    object: impl Fn(&T) -> &Value,
) -> Result<(), String> {
    if !items.is_empty() && items.iter().all(|item| key(path, &object, item).is_none()) {
        let braced = if shown.trim_start().starts_with('{') {
            shown.trim().to_owned()
        } else {
            format!("{{{}}}", shown.trim())
        };
        return Err(format!(
            "couldn't find any field with path {braced:?} in the list of objects"
        ));
    }
    items.sort_by(|a, b| compare(key(path, &object, a), key(path, &object, b)));
    Ok(())
}

/// The first value `path` finds in `item`'s object: what it is sorted by.
fn key<'v, T>(path: &Path, object: &impl Fn(&T) -> &Value, item: &'v T) -> Option<&'v Value> {
    let object = object(item);
    path.eval(object, object).first().copied()
}

/// How `--sort-by` orders two values as kubectl's isLess: missing or null first, numbers
/// by value, two strings that are both quantities by value (`500m` before `2`), other
/// strings in natural order (`web-9` before `web-10`; RFC 3339 times sort as times).
fn compare(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    let a = a.filter(|v| !v.is_null());
    let b = b.filter(|v| !v.is_null());
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(Value::Number(x)), Some(Value::Number(y))) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => x.total_cmp(&y),
            _ => Ordering::Equal,
        },
        (Some(Value::String(x)), Some(Value::String(y))) => {
            match (ParsedQuantity::parse(x), ParsedQuantity::parse(y)) {
                (Ok(x), Ok(y)) => x.cmp(&y),
                _ => natural(x, y),
            }
        }
        (Some(a), Some(b)) => natural(&text(a), &text(b)),
    }
}

/// Natural order as kubectl's (github.com/fvbommel/sortorder): runs of digits compare
/// as numbers (fewer leading zeros first on a tie), digits sort before other
/// characters, the rest byte by byte.
fn natural(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let (x, y) = (a[i], b[j]);
        match (x.is_ascii_digit(), y.is_ascii_digit()) {
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            (false, false) => {
                if x != y {
                    return x.cmp(&y);
                }
                i += 1;
                j += 1;
            }
            (true, true) => {
                let zeros =
                    |s: &[u8], at: usize| at + s[at..].iter().take_while(|&&c| c == b'0').count();
                let digits = |s: &[u8], at: usize| {
                    at + s[at..].iter().take_while(|c| c.is_ascii_digit()).count()
                };
                let (x0, y0) = (zeros(a, i), zeros(b, j));
                let (x1, y1) = (digits(a, x0), digits(b, y0));
                let order = (x1 - x0)
                    .cmp(&(y1 - y0))
                    .then_with(|| a[x0..x1].cmp(&b[y0..y1]))
                    .then_with(|| (x0 - i).cmp(&(y0 - j)));
                if order != Ordering::Equal {
                    return order;
                }
                (i, j) = (x1, y1);
            }
        }
    }
    (a.len() - i).cmp(&(b.len() - j))
}

/// A field name up to the next `.` or `[`, with `\.` for a dot inside it.
fn field(text: &str) -> (String, &str) {
    let mut name = String::new();
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' if chars.peek().is_some_and(|(_, n)| *n == '.') => {
                name.push('.');
                chars.next();
            }
            '.' | '[' => return (name, &text[i..]),
            _ => name.push(c),
        }
    }
    (name, "")
}

/// The quote and inside of `"..."` or `'...'`, if `text` is exactly that.
fn quoted(text: &str) -> Option<(char, &str)> {
    ['"', '\'']
        .into_iter()
        .find_map(|q| Some((q, text.strip_prefix(q)?.strip_suffix(q)?)))
}

/// Where the `}` closing an action is, skipping quoted text.
fn closing_brace(text: &str) -> Option<usize> {
    closing(text, '{', '}', 0)
}

/// Where the `]` closing the `[` that `text` starts with is, skipping quoted text.
fn closing_bracket(text: &str) -> Option<usize> {
    closing(&text[1..], '[', ']', 0).map(|i| i + 1)
}

fn closing(text: &str, open: char, close: char, mut depth: usize) -> Option<usize> {
    for (i, c) in unquoted(text) {
        if c == open {
            depth += 1;
        } else if c == close {
            if depth == 0 {
                return Some(i);
            }
            depth -= 1;
        }
    }
    None
}

/// The inside of a string quoted with `quote` as client-go reads it (Go's
/// `strconv.UnquoteChar`): `\a \b \f \n \r \t \v \\`, the quote itself, `\xHH`, `\OOO`,
/// `\uHHHH` and `\UHHHHHHHH`; any other escape is an error, as it is in kubectl.
fn unquote(text: &str, quote: char) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let escape = chars
            .next()
            .ok_or("a quoted string cannot end in a lone \\")?;
        let code = |chars: &mut std::str::Chars<'_>, digits: usize, radix: u32| {
            let taken: String = chars.by_ref().take(digits).collect();
            (taken.len() == digits)
                .then(|| u32::from_str_radix(&taken, radix).ok())
                .flatten()
                .ok_or_else(|| format!("bad escape \\{escape}{taken}"))
        };
        let decoded = match escape {
            'a' => '\u{7}',
            'b' => '\u{8}',
            'f' => '\u{c}',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'v' => '\u{b}',
            '\\' => '\\',
            c if c == quote => c,
            // A byte, which a Rust string holds only when it is ASCII.
            'x' => ascii(code(&mut chars, 2, 16)?)?,
            '0'..='7' => {
                let rest = code(&mut chars, 2, 8)?;
                ascii(escape.to_digit(8).unwrap_or(0) * 64 + rest)?
            }
            'u' => char_at(code(&mut chars, 4, 16)?)?,
            'U' => char_at(code(&mut chars, 8, 16)?)?,
            other => return Err(format!("unknown escape \\{other} in a quoted string")),
        };
        out.push(decoded);
    }
    Ok(out)
}

fn ascii(code: u32) -> Result<char, String> {
    u8::try_from(code)
        .ok()
        .filter(u8::is_ascii)
        .map(char::from)
        .ok_or_else(|| format!("byte escape {code:#x} is not ASCII"))
}

fn char_at(code: u32) -> Result<char, String> {
    char::from_u32(code).ok_or_else(|| format!("escape {code:#x} is not a character"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn list() -> Value {
        json!({
            "kind": "List",
            "items": [
                {"metadata": {"name": "web", "labels": {"app.kubernetes.io/name": "shop"}},
                 "status": {"conditions": [
                     {"type": "Ready", "status": "True"},
                     {"type": "Synced", "status": "False"}]},
                 "spec": {"replicas": 2}},
                {"metadata": {"name": "db"}, "spec": {"replicas": 1}, "note": "a=b"},
            ],
        })
    }

    fn rendered(template: &str) -> String {
        Template::parse(template).unwrap().render(&list())
    }

    #[test]
    fn templates_print_as_kubectls() {
        let cases = [
            ("{.items[*].metadata.name}", "web db"),
            ("{.items[0].metadata.name}", "web"),
            ("{.items[-1].metadata.name}", "db"),
            ("{$.kind}", "List"),
            ("kind: {.kind}!", "kind: List!"),
            (
                "{range .items[*]}{.metadata.name}{\"\\n\"}{end}",
                "web\ndb\n",
            ),
            // Literal text is printed as written, backslashes and all, as kubectl does.
            (
                "{range .items[*]}{.metadata.name}={.spec.replicas}\\n{end}",
                "web=2\\ndb=1\\n",
            ),
            ("\\d+ {.kind}", "\\d+ List"),
            // Quoted strings take Go's escapes.
            ("{\"a\\tb\\\"\\u00e9\\x41\\101\"}{'\\''}", "a\tb\"éAA'"),
            (
                "{.items[0].status.conditions[?(@.type==\"Ready\")].status}",
                "True",
            ),
            (
                "{.items[0].status.conditions[?(@.status!='True')].type}",
                "Synced",
            ),
            ("{.items[?(@.spec.replicas==1)].metadata.name}", "db"),
            ("{.items[?(@.spec.replicas>1)].metadata.name}", "web"),
            ("{.items[?(@.spec.replicas >= 1)].metadata.name}", "web db"),
            ("{.items[?(@.spec.replicas<2)].metadata.name}", "db"),
            ("{.items[?(@.spec.replicas<=2.5)].metadata.name}", "web db"),
            ("{.items[?(@.spec.replicas!=2)].metadata.name}", "db"),
            ("{.items[?(@.metadata.name<\"e\")].metadata.name}", "db"),
            ("{.items[?(@.metadata.name>'db')].metadata.name}", "web"),
            // Numbers and strings do not compare, and a missing field never passes.
            ("{.items[?(@.spec.replicas>\"1\")].metadata.name}", ""),
            ("{.items[?(@.spec.paused!=true)].metadata.name}", ""),
            // The operator is found outside quotes and brackets.
            ("{.items[?(@.note!=\"x==y\")].metadata.name}", "db"),
            ("{.items[?(@.note==\"x==y\")].metadata.name}", ""),
            (
                "{.items[?(@.metadata.labels['app.kubernetes.io/name']==\"shop\")].metadata.name}",
                "web",
            ),
            (
                "{.items[?(@.status.conditions[?(@.status==\"False\")])].metadata.name}",
                "web",
            ),
            ("{.items[?(@.metadata.labels)].metadata.name}", "web"),
            (
                "{.items[0].metadata.labels.app\\.kubernetes\\.io/name}",
                "shop",
            ),
            (
                "{.items[0].metadata.labels['app.kubernetes.io/name']}",
                "shop",
            ),
            ("{.items[1].spec}", "{\"replicas\":1}"),
            ("{.items[*].missing}", ""),
            ("{.items[5].metadata.name}", ""),
        ];
        for (template, text) in cases {
            assert_eq!(rendered(template), text, "{template}");
        }
    }

    #[test]
    fn malformed_templates_are_refused() {
        for bad in [
            "{.items",
            "{range .items[*]}{.metadata.name}",
            "{end}",
            "{metadata.name}",
            "{.items[}",
            "{.items[1:2]}",
            "{..name}",
            "{}",
            "{.a[?(@.b==x)]}",
            "{.a[?(@.b=~1)]}",
            "{.a[?(@.b==null)]}",
            "{\"\\q\"}",
            "{\"\\xff\"}",
            "{'\\u12'}",
        ] {
            assert!(Template::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let ranges = "{range .items[*]}".repeat(10_000) + &"{end}".repeat(10_000);
        let filters = "{.a".to_owned() + &"[?(@.a".repeat(10_000) + &")]".repeat(10_000) + "}";
        for deep in [ranges, filters] {
            let error = Template::parse(&deep).unwrap_err();
            assert!(error.contains("nest more than 32 deep"), "{error}");
        }
        let fine = "{range .items[*]}".repeat(MAX_DEPTH) + &"{end}".repeat(MAX_DEPTH);
        assert!(Template::parse(&fine).is_ok());
    }

    #[test]
    fn sorting_is_natural_and_reads_quantities_as_kubectls() {
        let sorted = |values: Value| {
            let mut items: Vec<Value> = values
                .as_array()
                .unwrap()
                .iter()
                .map(|v| json!({"v": v}))
                .collect();
            sort(&mut items, &Path::parse(".v").unwrap(), ".v", |v| v).unwrap();
            items
                .into_iter()
                .map(|i| i["v"].clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            sorted(json!(["web-10", "web-9", "web-1", "web-09", "db", "web-"])),
            [
                json!("db"),
                json!("web-"),
                json!("web-1"),
                json!("web-9"),
                json!("web-09"),
                json!("web-10")
            ]
        );
        assert_eq!(
            sorted(json!(["1Gi", "512Mi", "2", "500m"])),
            [json!("500m"), json!("2"), json!("512Mi"), json!("1Gi")]
        );
        assert_eq!(
            sorted(json!([10, 9, null, 1.5])),
            [json!(null), json!(1.5), json!(9), json!(10)]
        );
        let mut items = vec![json!({"a": 1}), json!({"b": 2})];
        let error = sort(&mut items, &Path::parse(".c").unwrap(), ".c", |v| v).unwrap_err();
        assert_eq!(
            error,
            "couldn't find any field with path \"{.c}\" in the list of objects"
        );
        // Found in one object is enough; the other sorts first.
        sort(&mut items, &Path::parse("{.b}").unwrap(), "{.b}", |v| v).unwrap();
        assert_eq!(items, [json!({"a": 1}), json!({"b": 2})]);
    }

    #[test]
    fn sort_keys_order_missing_numbers_and_text() {
        let path = Path::parse("{.spec.replicas}").unwrap();
        let items = list()["items"].as_array().unwrap().clone();
        let keys: Vec<Option<&Value>> = items
            .iter()
            .map(|i| path.eval(i, i).first().copied())
            .collect();
        assert_eq!(compare(keys[0], keys[1]), Ordering::Greater);
        assert_eq!(compare(None, keys[1]), Ordering::Less);
        assert_eq!(
            compare(
                Some(&json!("2024-01-02T00:00:00Z")),
                Some(&json!("2024-01-10T00:00:00Z"))
            ),
            Ordering::Less
        );
        assert!(Path::parse("metadata.name").is_err());
    }
}
