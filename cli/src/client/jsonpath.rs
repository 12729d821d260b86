//! kubectl's JSONPath templates, the subset `get -o jsonpath=...` and `--sort-by` use:
//! literal text, `{.a.b}`, `{.items[*].metadata.name}` (results joined by spaces), `[N]`,
//! `['key']`, filters `[?(@.type=="Ready")]`, `{range PATH}...{end}`, and `{"\n"}`. As
//! kubectl's `get` does, a missing field prints nothing rather than failing. Backslash
//! escapes (`\n`, `\t`, `\\`) are read in literal text too, so a template needs no
//! shell quoting tricks to end its lines.

use std::cmp::Ordering;

use serde_json::Value;

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
        test: Option<(bool, Value)>,
    },
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
                nodes.push(Node::Text(unescape(rest)?));
                break;
            };
            if start > 0 {
                nodes.push(Node::Text(unescape(&rest[..start])?));
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
                open.push((Path::parse(path.trim())?, std::mem::take(&mut nodes)));
            } else if let Some(quoted) = quoted(action) {
                nodes.push(Node::Text(unescape(quoted)?));
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
                    steps.push(Step::parse(&rest[1..end]).map_err(|why| bad(&why))?);
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
    /// A bracketed step's inside: `*`, an index, a quoted key or `?(filter)`.
    fn parse(inside: &str) -> Result<Step, String> {
        let inside = inside.trim();
        if inside == "*" {
            return Ok(Step::All);
        }
        if let Some(key) = quoted(inside) {
            return Ok(Step::Field(unescape(key)?));
        }
        if let Some(filter) = inside.strip_prefix("?(").and_then(|f| f.strip_suffix(')')) {
            return filter_step(filter.trim());
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
                        Some((equal, wanted)) => found.iter().any(|v| same(v, wanted)) == *equal,
                    }
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// `@.path`, `@.path == literal` or `@.path != literal`.
fn filter_step(filter: &str) -> Result<Step, String> {
    let split = ["==", "!="]
        .iter()
        .find_map(|op| filter.split_once(op).map(|(l, r)| (l, *op == "==", r)));
    let Some((left, equal, right)) = split else {
        return Ok(Step::Filter {
            path: Path::parse(filter)?,
            test: None,
        });
    };
    let right = right.trim();
    let literal = match quoted(right) {
        Some(s) => Value::String(unescape(s)?),
        None => serde_json::from_str(right)
            .map_err(|_| format!("{right:?} is not a quoted string, number or boolean"))?,
    };
    Ok(Step::Filter {
        path: Path::parse(left.trim())?,
        test: Some((equal, literal)),
    })
}

/// Whether a found value equals a filter's literal: numbers by value, the rest as JSON.
fn same(found: &Value, literal: &Value) -> bool {
    match (found.as_f64(), literal.as_f64()) {
        (Some(a), Some(b)) => a == b,
        _ => found == literal,
    }
}

/// How `--sort-by` orders two objects' values: missing first, then numbers by value,
/// the rest by their text (RFC 3339 times sort as times).
pub(super) fn compare(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(a), Some(b)) => match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => x.total_cmp(&y),
            _ => text(a).cmp(&text(b)),
        },
    }
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

/// The inside of `"..."` or `'...'`, if `text` is exactly that.
fn quoted(text: &str) -> Option<&str> {
    ['"', '\'']
        .iter()
        .find_map(|q| text.strip_prefix(*q)?.strip_suffix(*q))
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
    let mut quote = None;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match (quote, c) {
            (Some(_), '\\') if !escaped => {
                escaped = true;
                continue;
            }
            (Some(q), c) if c == q && !escaped => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, c) if c == open => depth += 1,
            (None, c) if c == close && depth == 0 => return Some(i),
            (None, c) if c == close => depth -= 1,
            (None, _) => {}
        }
        escaped = false;
    }
    None
}

/// `\n`, `\t`, `\r`, `\\` and escaped quotes as the characters they stand for.
fn unescape(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some(c @ ('\\' | '"' | '\'')) => out.push(c),
            Some(c) => return Err(format!("unknown escape \\{c}")),
            None => return Err("a template cannot end in a lone \\".to_owned()),
        }
    }
    Ok(out)
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
                {"metadata": {"name": "db"}, "spec": {"replicas": 1}},
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
            (
                "{range .items[*]}{.metadata.name}={.spec.replicas}\\n{end}",
                "web=2\ndb=1\n",
            ),
            (
                "{.items[0].status.conditions[?(@.type==\"Ready\")].status}",
                "True",
            ),
            (
                "{.items[0].status.conditions[?(@.status!='True')].type}",
                "Synced",
            ),
            ("{.items[?(@.spec.replicas==1)].metadata.name}", "db"),
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
            "\\q",
        ] {
            assert!(Template::parse(bad).is_err(), "{bad}");
        }
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
