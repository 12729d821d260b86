//! Label selectors as Kubernetes defines them (apimachinery v0.32 `pkg/labels/selector.go`):
//! the query-string form clients send as `?labelSelector=`, the `metav1.LabelSelector` objects
//! carry, matching against an object's labels, and the canonical string form.
//!
//! Parsing reproduces Kubernetes' lexer and parser, including its error messages, so a client
//! sees the same `400 BadRequest` text it would from a real API server.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::validation::{
    self, FieldError, FieldValue, go_quote, is_qualified_name, is_valid_label_value,
};

/// How a [`Requirement`] relates a label to its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operator {
    /// `key=value`
    Equals,
    /// `key==value`, the same test as [`Operator::Equals`], kept apart only to print back as written.
    DoubleEquals,
    /// `key!=value`; also true when the label is absent.
    NotEquals,
    /// `key in (a,b)`
    In,
    /// `key notin (a,b)`; also true when the label is absent.
    NotIn,
    /// `key`
    Exists,
    /// `!key`
    DoesNotExist,
    /// `key>1`: the label is an integer greater than the value.
    GreaterThan,
    /// `key<1`: the label is an integer less than the value.
    LessThan,
}

impl Operator {
    /// Kubernetes' name of the operator (`selection.Operator`), as error messages print it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Equals => "=",
            Self::DoubleEquals => "==",
            Self::NotEquals => "!=",
            Self::In => "in",
            Self::NotIn => "notin",
            Self::Exists => "exists",
            Self::DoesNotExist => "!",
            Self::GreaterThan => "gt",
            Self::LessThan => "lt",
        }
    }
}

/// Why a selector could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// The string does not follow the selector grammar; the message is Kubernetes'.
    #[error("{0}")]
    Syntax(String),
    /// A requirement's key, operator or values break Kubernetes' rules.
    #[error("{}", validation::aggregate(.0))]
    Invalid(Vec<FieldError>),
    /// A requirement inside a selector string failed; wraps the reason as Kubernetes does.
    #[error("unable to parse requirement: {0}")]
    Requirement(Box<SelectorError>),
    /// A `matchExpressions` operator other than In, NotIn, Exists and DoesNotExist.
    #[error("{} is not a valid label selector operator", go_quote(.0))]
    UnknownOperator(String),
}

/// One condition on one label.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Requirement {
    key: String,
    operator: Operator,
    values: Vec<String>,
}

impl Requirement {
    /// Builds a requirement and checks it as `labels.NewRequirement` does: the key is a
    /// qualified name, values are label values, and their number suits the operator.
    pub fn new(key: &str, operator: Operator, values: Vec<String>) -> Result<Self, SelectorError> {
        let mut errs = Vec::new();
        let joined = is_qualified_name(key).join("; ");
        if !joined.is_empty() {
            errs.push(FieldError::invalid("key", key, joined));
        }
        match operator {
            Operator::In | Operator::NotIn if values.is_empty() => {
                errs.push(FieldError::invalid(
                    "values",
                    FieldValue::Strings(values.clone()),
                    "for 'in', 'notin' operators, values set can't be empty",
                ));
            }
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals
                if values.len() != 1 =>
            {
                errs.push(FieldError::invalid(
                    "values",
                    FieldValue::Strings(values.clone()),
                    "exact-match compatibility requires one single value",
                ));
            }
            Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
                errs.push(FieldError::invalid(
                    "values",
                    FieldValue::Strings(values.clone()),
                    "values set must be empty for exists and does not exist",
                ));
            }
            Operator::GreaterThan | Operator::LessThan => {
                if values.len() != 1 {
                    errs.push(FieldError::invalid(
                        "values",
                        FieldValue::Strings(values.clone()),
                        "for 'Gt', 'Lt' operators, exactly one value is required",
                    ));
                }
                for (i, value) in values.iter().enumerate() {
                    if value.parse::<i64>().is_err() {
                        errs.push(FieldError::invalid(
                            format!("values[{i}]"),
                            value.as_str(),
                            "for 'Gt', 'Lt' operators, the value must be an integer",
                        ));
                    }
                }
            }
            _ => {}
        }
        for (i, value) in values.iter().enumerate() {
            let joined = is_valid_label_value(value).join("; ");
            if !joined.is_empty() {
                errs.push(FieldError::invalid(
                    format!("values[{i}][{key}]"),
                    value.as_str(),
                    joined,
                ));
            }
        }
        if !errs.is_empty() {
            return Err(SelectorError::Invalid(errs));
        }
        let mut values = values;
        // Set-based requirements are sets: Kubernetes parses them into a sorted set and
        // prints them sorted, so order and repeats carry no meaning.
        if matches!(operator, Operator::In | Operator::NotIn) {
            values.sort();
            values.dedup();
        }
        Ok(Self {
            key: key.to_owned(),
            operator,
            values,
        })
    }

    /// The label key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The operator.
    pub fn operator(&self) -> Operator {
        self.operator
    }

    /// The values: none for Exists / DoesNotExist, one for the exact and integer operators,
    /// sorted and unique for In / NotIn.
    pub fn values(&self) -> &[String] {
        &self.values
    }

    /// Whether `labels` satisfy this requirement. NotEquals and NotIn hold when the label is
    /// absent; GreaterThan and LessThan fail unless both sides are integers.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        match self.operator {
            Operator::Equals | Operator::DoubleEquals | Operator::In => {
                value.is_some_and(|v| self.values.contains(v))
            }
            Operator::NotEquals | Operator::NotIn => value.is_none_or(|v| !self.values.contains(v)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let (Some(actual), [bound]) = (value, self.values.as_slice()) else {
                    return false;
                };
                match (actual.parse::<i64>(), bound.parse::<i64>()) {
                    (Ok(actual), Ok(bound)) if self.operator == Operator::GreaterThan => {
                        actual > bound
                    }
                    (Ok(actual), Ok(bound)) => actual < bound,
                    _ => false,
                }
            }
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let values = self.values.join(",");
        let key = &self.key;
        match self.operator {
            Operator::Equals => write!(f, "{key}={values}"),
            Operator::DoubleEquals => write!(f, "{key}=={values}"),
            Operator::NotEquals => write!(f, "{key}!={values}"),
            Operator::In => write!(f, "{key} in ({values})"),
            Operator::NotIn => write!(f, "{key} notin ({values})"),
            Operator::Exists => write!(f, "{key}"),
            Operator::DoesNotExist => write!(f, "!{key}"),
            Operator::GreaterThan => write!(f, "{key}>{values}"),
            Operator::LessThan => write!(f, "{key}<{values}"),
        }
    }
}

/// A conjunction of [`Requirement`]s, kept sorted by key as Kubernetes keeps them.
/// The empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

impl Selector {
    /// The selector that matches every object.
    pub fn everything() -> Self {
        Self::default()
    }

    /// Parses the query-string form, e.g. `app=web,tier!=db,env in (a,b),!legacy`.
    pub fn parse(selector: &str) -> Result<Self, SelectorError> {
        let tokens = lex(selector);
        let mut parser = Parser {
            tokens: &tokens,
            position: 0,
        };
        let requirements = parser.parse()?;
        Ok(Self::from_requirements(requirements))
    }

    /// The selector `key=value` for every entry of `labels`, as a Service's or ReplicaSet's
    /// `selector` map means (`SelectorFromSet`). The map is taken as already validated.
    pub fn from_labels(labels: &BTreeMap<String, String>) -> Self {
        Self {
            requirements: labels
                .iter()
                .map(|(key, value)| Requirement {
                    key: key.clone(),
                    operator: Operator::Equals,
                    values: vec![value.clone()],
                })
                .collect(),
        }
    }

    /// Builds a selector from requirements, sorted by key.
    pub fn from_requirements(mut requirements: Vec<Requirement>) -> Self {
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Self { requirements }
    }

    /// Whether this selector has no requirements and so matches everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The requirements, sorted by key.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// The one value `label` must have for this selector to match, if the first requirement
    /// on that label pins it (`RequiresExactMatch`); useful to narrow a list by an index.
    pub fn requires_exact_match(&self, label: &str) -> Option<&str> {
        let requirement = self.requirements.iter().find(|r| r.key == label)?;
        match (requirement.operator, requirement.values.as_slice()) {
            (Operator::Equals | Operator::DoubleEquals | Operator::In, [value]) => Some(value),
            _ => None,
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::write_comma_joined(f, &self.requirements)
    }
}

impl FromStr for Selector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<&LabelSelector> for Selector {
    type Error = SelectorError;

    /// Converts as `metav1.LabelSelectorAsSelector` does: `matchLabels` become `key=value`,
    /// `matchExpressions` their operators; an empty selector matches everything. (A missing
    /// selector, which Kubernetes reads as "nothing", is for the caller to handle.)
    fn try_from(selector: &LabelSelector) -> Result<Self, Self::Error> {
        let mut requirements = Vec::new();
        for (key, value) in selector.match_labels.iter().flatten() {
            requirements.push(Requirement::new(
                key,
                Operator::Equals,
                vec![value.clone()],
            )?);
        }
        for expression in selector.match_expressions.iter().flatten() {
            let operator = match expression.operator.as_str() {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => return Err(SelectorError::UnknownOperator(other.to_owned())),
            };
            let values = expression.values.clone().unwrap_or_default();
            requirements.push(Requirement::new(&expression.key, operator, values)?);
        }
        Ok(Self::from_requirements(requirements))
    }
}

/// Checks a `metav1.LabelSelector` as `ValidateLabelSelector` does, with field paths under
/// `path` (e.g. `spec.selector`): In / NotIn need values, Exists / DoesNotExist forbid them.
pub fn validate_label_selector(selector: &LabelSelector, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(labels) = &selector.match_labels {
        errs.extend(validation::validate_labels(
            labels,
            &format!("{path}.matchLabels"),
        ));
    }
    for (i, expression) in selector.match_expressions.iter().flatten().enumerate() {
        let base = format!("{path}.matchExpressions[{i}]");
        let values = expression.values.as_deref().unwrap_or_default();
        match expression.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => errs.push(FieldError::required(
                format!("{base}.values"),
                "must be specified when `operator` is 'In' or 'NotIn'",
            )),
            "Exists" | "DoesNotExist" if !values.is_empty() => errs.push(FieldError::forbidden(
                format!("{base}.values"),
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => errs.push(FieldError::invalid(
                format!("{base}.operator"),
                other,
                "not a valid selector operator",
            )),
        }
        errs.extend(validation::validate_label_name(
            &expression.key,
            &format!("{base}.key"),
        ));
        for (j, value) in values.iter().enumerate() {
            errs.extend(
                is_valid_label_value(value)
                    .into_iter()
                    .map(|m| FieldError::invalid(format!("{base}.values[{j}]"), value.as_str(), m)),
            );
        }
    }
    errs
}

/// A token of Kubernetes' selector lexer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    EndOfString,
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

/// Where the parser is: `in` / `notin` are keywords only in operator position; elsewhere
/// they are ordinary keys and values (`notin=in` is a valid selector).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Context {
    KeyAndOperator,
    Values,
}

#[derive(Debug, Clone)]
struct Scanned<'a> {
    token: Token,
    literal: &'a str,
}

fn keyword(literal: &str) -> Option<Token> {
    Some(match literal {
        ")" => Token::ClosedPar,
        "," => Token::Comma,
        "!" => Token::DoesNotExist,
        "==" => Token::DoubleEquals,
        "=" => Token::Equals,
        ">" => Token::GreaterThan,
        "in" => Token::In,
        "<" => Token::LessThan,
        "!=" => Token::NotEquals,
        "notin" => Token::NotIn,
        "(" => Token::OpenPar,
        _ => return None,
    })
}

fn is_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_special(b: u8) -> bool {
    matches!(b, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

/// Splits a selector into tokens. Like Kubernetes' lexer it works on bytes and reads a NUL
/// byte as the end of the string; identifiers end only at ASCII bytes, so every literal is a
/// valid `str` slice.
fn lex(s: &str) -> Vec<Scanned<'_>> {
    let bytes = s.as_bytes();
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let mut pos = 0;
    let mut tokens = Vec::new();
    loop {
        while pos < end && is_whitespace(bytes[pos]) {
            pos += 1;
        }
        if pos >= end {
            tokens.push(Scanned {
                token: Token::EndOfString,
                literal: "",
            });
            return tokens;
        }
        let start = pos;
        if is_special(bytes[pos]) {
            // Longest run of special bytes that still forms a token: `!=` and `==` win over
            // `!` and `=`. Every single special byte is a token, so this always finds one.
            let mut best = (Token::EndOfString, start);
            while pos < end && is_special(bytes[pos]) {
                match keyword(&s[start..=pos]) {
                    Some(token) => best = (token, pos + 1),
                    None => break,
                }
                pos += 1;
            }
            pos = best.1;
            tokens.push(Scanned {
                token: best.0,
                literal: &s[start..pos],
            });
        } else {
            while pos < end && !is_special(bytes[pos]) && !is_whitespace(bytes[pos]) {
                pos += 1;
            }
            let literal = &s[start..pos];
            tokens.push(Scanned {
                token: keyword(literal).unwrap_or(Token::Identifier),
                literal,
            });
        }
    }
}

struct Parser<'t, 'a> {
    tokens: &'t [Scanned<'a>],
    position: usize,
}

fn syntax(message: String) -> SelectorError {
    SelectorError::Syntax(message)
}

impl<'a> Parser<'_, 'a> {
    fn in_context(token: Token, context: Context) -> Token {
        match (context, token) {
            (Context::Values, Token::In | Token::NotIn) => Token::Identifier,
            _ => token,
        }
    }

    fn lookahead(&self, context: Context) -> (Token, &'a str) {
        // The lexer always ends with EndOfString and the parser never consumes past it.
        let item = &self.tokens[self.position.min(self.tokens.len() - 1)];
        (Self::in_context(item.token, context), item.literal)
    }

    fn consume(&mut self, context: Context) -> (Token, &'a str) {
        let item = self.lookahead(context);
        self.position += 1;
        item
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, SelectorError> {
        let mut requirements = Vec::new();
        loop {
            let (token, literal) = self.lookahead(Context::Values);
            match token {
                Token::Identifier | Token::DoesNotExist => {
                    let requirement = self
                        .parse_requirement()
                        .map_err(|e| SelectorError::Requirement(Box::new(e)))?;
                    requirements.push(requirement);
                    let (token, literal) = self.consume(Context::Values);
                    match token {
                        Token::EndOfString => return Ok(requirements),
                        Token::Comma => {
                            let (next, literal) = self.lookahead(Context::Values);
                            if next != Token::Identifier && next != Token::DoesNotExist {
                                return Err(syntax(format!(
                                    "found '{literal}', expected: identifier after ','"
                                )));
                            }
                        }
                        _ => {
                            return Err(syntax(format!(
                                "found '{literal}', expected: ',' or 'end of string'"
                            )));
                        }
                    }
                }
                Token::EndOfString => return Ok(requirements),
                _ => {
                    return Err(syntax(format!(
                        "found '{literal}', expected: !, identifier, or 'end of string'"
                    )));
                }
            }
        }
    }

    fn parse_requirement(&mut self) -> Result<Requirement, SelectorError> {
        let (key, inferred) = self.parse_key_and_infer_operator()?;
        if let Some(operator) = inferred {
            return Requirement::new(key, operator, Vec::new());
        }
        let operator = self.parse_operator()?;
        let values = match operator {
            Operator::In | Operator::NotIn => self.parse_values()?,
            _ => self.parse_exact_value()?,
        };
        Requirement::new(key, operator, values.into_iter().collect())
    }

    fn parse_key_and_infer_operator(
        &mut self,
    ) -> Result<(&'a str, Option<Operator>), SelectorError> {
        let (mut token, mut literal) = self.consume(Context::Values);
        let mut operator = None;
        if token == Token::DoesNotExist {
            operator = Some(Operator::DoesNotExist);
            (token, literal) = self.consume(Context::Values);
        }
        if token != Token::Identifier {
            return Err(syntax(format!("found '{literal}', expected: identifier")));
        }
        let errs = is_qualified_name(literal);
        if !errs.is_empty() {
            // Kubernetes validates the key here with a nil field path, which prints as `<nil>`.
            return Err(SelectorError::Invalid(vec![FieldError::invalid(
                "<nil>",
                literal,
                errs.join("; "),
            )]));
        }
        let (next, _) = self.lookahead(Context::Values);
        if matches!(next, Token::EndOfString | Token::Comma) && operator.is_none() {
            operator = Some(Operator::Exists);
        }
        Ok((literal, operator))
    }

    fn parse_operator(&mut self) -> Result<Operator, SelectorError> {
        let (token, literal) = self.consume(Context::KeyAndOperator);
        Ok(match token {
            Token::In => Operator::In,
            Token::Equals => Operator::Equals,
            Token::DoubleEquals => Operator::DoubleEquals,
            Token::GreaterThan => Operator::GreaterThan,
            Token::LessThan => Operator::LessThan,
            Token::NotIn => Operator::NotIn,
            Token::NotEquals => Operator::NotEquals,
            _ => {
                return Err(syntax(format!(
                    "found '{literal}', expected: in, notin, =, ==, !=, gt, lt"
                )));
            }
        })
    }

    fn parse_values(&mut self) -> Result<BTreeSet<String>, SelectorError> {
        let (token, literal) = self.consume(Context::Values);
        if token != Token::OpenPar {
            return Err(syntax(format!("found '{literal}' expected: '('")));
        }
        let (token, literal) = self.lookahead(Context::Values);
        match token {
            Token::Identifier | Token::Comma => {
                let values = self.parse_identifiers_list()?;
                // Kubernetes reports the token seen before the list, not the offending one.
                if self.consume(Context::Values).0 != Token::ClosedPar {
                    return Err(syntax(format!("found '{literal}', expected: ')'")));
                }
                Ok(values)
            }
            Token::ClosedPar => {
                self.consume(Context::Values);
                Ok(BTreeSet::from([String::new()]))
            }
            _ => Err(syntax(format!(
                "found '{literal}', expected: ',', ')' or identifier"
            ))),
        }
    }

    /// The values between parentheses; empty entries (`(,a)`, `(a,,b)`, `(a,)`) are the
    /// empty string, as in Kubernetes.
    fn parse_identifiers_list(&mut self) -> Result<BTreeSet<String>, SelectorError> {
        let mut values = BTreeSet::new();
        loop {
            let (token, literal) = self.consume(Context::Values);
            match token {
                Token::Identifier => {
                    values.insert(literal.to_owned());
                    let (next, literal) = self.lookahead(Context::Values);
                    match next {
                        Token::Comma => {}
                        Token::ClosedPar => return Ok(values),
                        _ => {
                            return Err(syntax(format!("found '{literal}', expected: ',' or ')'")));
                        }
                    }
                }
                Token::Comma => {
                    if values.is_empty() {
                        values.insert(String::new());
                    }
                    match self.lookahead(Context::Values).0 {
                        Token::ClosedPar => {
                            values.insert(String::new());
                            return Ok(values);
                        }
                        Token::Comma => {
                            self.consume(Context::Values);
                            values.insert(String::new());
                        }
                        _ => {}
                    }
                }
                _ => {
                    return Err(syntax(format!(
                        "found '{literal}', expected: ',', or identifier"
                    )));
                }
            }
        }
    }

    fn parse_exact_value(&mut self) -> Result<BTreeSet<String>, SelectorError> {
        let (token, _) = self.lookahead(Context::Values);
        if matches!(token, Token::EndOfString | Token::Comma) {
            return Ok(BTreeSet::from([String::new()]));
        }
        let (token, literal) = self.consume(Context::Values);
        if token == Token::Identifier {
            return Ok(BTreeSet::from([literal.to_owned()]));
        }
        Err(syntax(format!("found '{literal}', expected: identifier")))
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    use super::*;

    fn set(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    // TestSelectorParse in apimachinery's labels/selector_test.go: good strings print back
    // without their spaces.
    #[test]
    fn parse_and_print_back() {
        let good = [
            "x=a,y=b,z=c",
            "",
            "x!=a,y=b",
            "x=",
            "x= ",
            "x=,z= ",
            "x= ,z= ",
            "!x",
            "x>1",
            "x>1,z<5",
        ];
        for input in good {
            let selector = Selector::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(selector.to_string(), input.replace(' ', ""), "{input:?}");
        }
    }

    // More forms from TestToString and the documented syntax: sorting by key, set values
    // sorted and deduplicated, whitespace tolerance, `in`/`notin` usable as keys and values.
    #[test]
    fn canonical_string_form() {
        let cases = [
            (
                "x in (foo,,baz),y,z notin ()",
                "x in (,baz,foo),y,z notin ()",
            ),
            ("  a  ==  b ,  c  in  ( x , y )  ", "a==b,c in (x,y)"),
            ("z=1,a=2,m", "a=2,m,z=1"),
            ("env in (prod,dev,prod)", "env in (dev,prod)"),
            ("notin=in", "notin=in"),
            ("in in (notin)", "in in (notin)"),
            ("x in (a,)", "x in (,a)"),
            ("x in (,a)", "x in (,a)"),
            ("x in (a,,b)", "x in (,a,b)"),
            ("example.com/tier!=db", "example.com/tier!=db"),
            ("!a,!b", "!a,!b"),
        ];
        for (input, want) in cases {
            assert_eq!(
                Selector::parse(input).unwrap().to_string(),
                want,
                "{input:?}"
            );
        }
    }

    // Error messages of Parser.parse / parseRequirement / parseOperator / parseValues.
    #[test]
    fn parse_errors() {
        let qualified = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
        let cases = [
            ("x=a||y=b", "unable to parse requirement: values[0][x]: Invalid value: \"a||y\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')".to_owned()),
            ("x==a==b", "found '==', expected: ',' or 'end of string'".to_owned()),
            ("!x=a", "found '=', expected: ',' or 'end of string'".to_owned()),
            ("x<a", "unable to parse requirement: values[0]: Invalid value: \"a\": for 'Gt', 'Lt' operators, the value must be an integer".to_owned()),
            ("a b", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt".to_owned()),
            ("x in a", "unable to parse requirement: found 'a' expected: '('".to_owned()),
            ("x in (a b)", "unable to parse requirement: found 'b', expected: ',' or ')'".to_owned()),
            ("x in (=)", "unable to parse requirement: found '=', expected: ',', ')' or identifier".to_owned()),
            ("x in (a,=)", "unable to parse requirement: found '=', expected: ',', or identifier".to_owned()),
            ("x=a,", "found '', expected: identifier after ','".to_owned()),
            (",x", "found ',', expected: !, identifier, or 'end of string'".to_owned()),
            ("x=(", "unable to parse requirement: found '(', expected: identifier".to_owned()),
            ("!", "unable to parse requirement: found '', expected: identifier".to_owned()),
            ("-x", format!("unable to parse requirement: <nil>: Invalid value: \"-x\": {qualified}")),
        ];
        for (input, want) in cases {
            let err = Selector::parse(input).expect_err(input);
            assert_eq!(err.to_string(), want, "{input:?}");
        }
    }

    // TestSelectorMatches and the NotEquals / NotIn semantics of Requirement.Matches.
    #[test]
    fn matching() {
        let labelset = set(&[("foo", "bar"), ("baz", "blah")]);
        let cases: &[(&str, BTreeMap<String, String>, bool)] = &[
            ("", set(&[("x", "y")]), true),
            ("x=y", set(&[("x", "y")]), true),
            ("x=y,z=w", set(&[("x", "y"), ("z", "w")]), true),
            ("x!=y,z!=w", set(&[("x", "z"), ("z", "a")]), true),
            ("notin=in", set(&[("notin", "in")]), true),
            ("x", set(&[("x", "z")]), true),
            ("!x", set(&[("y", "z")]), true),
            ("x>1", set(&[("x", "2")]), true),
            ("x<1", set(&[("x", "0")]), true),
            ("x=z", set(&[]), false),
            ("x=y", set(&[("x", "z")]), false),
            ("x=y,z=w", set(&[("x", "w"), ("z", "w")]), false),
            ("x!=y,z!=w", set(&[("x", "z"), ("z", "w")]), false),
            ("x", set(&[("y", "z")]), false),
            ("!x", set(&[("x", "z")]), false),
            ("x>1", set(&[("x", "0")]), false),
            ("x<1", set(&[("x", "2")]), false),
            ("x>1", set(&[("x", "two")]), false),
            ("x>1", set(&[]), false),
            ("x!=y", set(&[]), true),
            ("x notin (a,b)", set(&[]), true),
            ("x notin (a,b)", set(&[("x", "a")]), false),
            ("x notin (a,b)", set(&[("x", "c")]), true),
            ("x in (a,b)", set(&[("x", "b")]), true),
            ("x in (a,b)", set(&[]), false),
            ("x=", set(&[("x", "")]), true),
            ("x=", set(&[]), false),
            ("foo=bar,baz=blah", labelset.clone(), true),
            ("foo=blah", labelset.clone(), false),
            ("foo=bar,foobar=bar,baz=blah", labelset.clone(), false),
        ];
        for (selector, labels, want) in cases {
            let parsed = Selector::parse(selector).unwrap();
            assert_eq!(parsed.matches(labels), *want, "{selector:?} on {labels:?}");
        }
    }

    #[test]
    fn empty_selects_everything() {
        assert!(Selector::everything().is_empty());
        assert!(Selector::everything().matches(&set(&[("a", "b")])));
        assert!(Selector::parse("").unwrap().is_empty());
        assert!(Selector::from_labels(&BTreeMap::new()).is_empty());
        assert!(!Selector::parse("a").unwrap().is_empty());
    }

    // TestRequiresExactMatch.
    #[test]
    fn exact_match() {
        let cases = [
            ("", "foo", None),
            ("foo=bar", "foo", Some("bar")),
            ("foo==bar", "foo", Some("bar")),
            ("foo in (bar)", "foo", Some("bar")),
            ("foo in (bar,baz)", "foo", None),
            ("foo!=bar", "foo", None),
            ("foo", "foo", None),
            ("foo=bar", "baz", None),
        ];
        for (selector, label, want) in cases {
            assert_eq!(
                Selector::parse(selector)
                    .unwrap()
                    .requires_exact_match(label),
                want,
                "{selector:?}"
            );
        }
    }

    // TestRequirementConstructor: the errors of labels.NewRequirement.
    #[test]
    fn requirement_constructor() {
        let cases: &[(&str, Operator, &[&str], Option<&str>)] = &[
            (
                "x1",
                Operator::In,
                &[],
                Some(
                    "values: Invalid value: []string{}: for 'in', 'notin' operators, values set can't be empty",
                ),
            ),
            (
                "x2",
                Operator::NotIn,
                &[],
                Some(
                    "values: Invalid value: []string{}: for 'in', 'notin' operators, values set can't be empty",
                ),
            ),
            ("x3", Operator::In, &["foo"], None),
            (
                "x5",
                Operator::Equals,
                &["bar", "foo"],
                Some(
                    "values: Invalid value: []string{\"bar\", \"foo\"}: exact-match compatibility requires one single value",
                ),
            ),
            ("x6", Operator::Exists, &[], None),
            (
                "x8",
                Operator::Exists,
                &["foo"],
                Some(
                    "values: Invalid value: []string{\"foo\"}: values set must be empty for exists and does not exist",
                ),
            ),
            ("x11", Operator::GreaterThan, &["1"], None),
            ("x12", Operator::LessThan, &["1"], None),
            (
                "x13",
                Operator::GreaterThan,
                &[],
                Some(
                    "values: Invalid value: []string{}: for 'Gt', 'Lt' operators, exactly one value is required",
                ),
            ),
            (
                "x14",
                Operator::GreaterThan,
                &["bar"],
                Some(
                    "values[0]: Invalid value: \"bar\": for 'Gt', 'Lt' operators, the value must be an integer",
                ),
            ),
            (
                "x15",
                Operator::Equals,
                &["a b"],
                Some(
                    "values[0][x15]: Invalid value: \"a b\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
                ),
            ),
        ];
        for (key, operator, values, want) in cases {
            let values = values.iter().map(|v| (*v).to_owned()).collect();
            let got = Requirement::new(key, *operator, values)
                .err()
                .map(|e| e.to_string());
            assert_eq!(got.as_deref(), *want, "{key}");
        }
        let long_key = "a".repeat(64);
        let err = Requirement::new(&long_key, Operator::Exists, vec![]).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "key: Invalid value: \"{long_key}\": name part must be no more than 63 characters"
            )
        );
    }

    fn expression(key: &str, operator: &str, values: Option<&[&str]>) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.to_owned(),
            operator: operator.to_owned(),
            values: values.map(|v| v.iter().map(|s| (*s).to_owned()).collect()),
        }
    }

    // TestLabelSelectorAsSelector in apis/meta/v1/helpers_test.go.
    #[test]
    fn from_label_selector() {
        let cases: Vec<(LabelSelector, Result<&str, &str>)> = vec![
            (LabelSelector::default(), Ok("")),
            (
                LabelSelector {
                    match_labels: Some(set(&[("foo", "bar"), ("baz", "blah")])),
                    match_expressions: None,
                },
                Ok("baz=blah,foo=bar"),
            ),
            (
                LabelSelector {
                    match_labels: Some(set(&[("foo", "bar"), ("baz", "blah")])),
                    match_expressions: Some(vec![
                        expression("baz", "Exists", None),
                        expression("foo", "NotIn", Some(&["norse", "bar"])),
                        expression("qux", "In", Some(&["b", "a"])),
                        expression("old", "DoesNotExist", Some(&[])),
                    ]),
                },
                Ok("baz=blah,baz,foo=bar,foo notin (bar,norse),!old,qux in (a,b)"),
            ),
            (
                LabelSelector {
                    match_labels: None,
                    match_expressions: Some(vec![expression("foo", "Gt", Some(&["1"]))]),
                },
                Err("\"Gt\" is not a valid label selector operator"),
            ),
            (
                LabelSelector {
                    match_labels: None,
                    match_expressions: Some(vec![expression("foo", "In", None)]),
                },
                Err(
                    "values: Invalid value: []string{}: for 'in', 'notin' operators, values set can't be empty",
                ),
            ),
        ];
        for (selector, want) in cases {
            let got = Selector::try_from(&selector)
                .map(|s| s.to_string())
                .map_err(|e| e.to_string());
            assert_eq!(
                got.as_ref().map(String::as_str).map_err(String::as_str),
                want,
                "{selector:?}"
            );
        }
        let selector = LabelSelector {
            match_labels: Some(set(&[("app", "web")])),
            match_expressions: Some(vec![expression("tier", "NotIn", Some(&["db"]))]),
        };
        let parsed = Selector::try_from(&selector).unwrap();
        assert!(parsed.matches(&set(&[("app", "web")])));
        assert!(parsed.matches(&set(&[("app", "web"), ("tier", "front")])));
        assert!(!parsed.matches(&set(&[("app", "web"), ("tier", "db")])));
    }

    // TestValidateLabelSelector in apis/meta/v1/validation/validation_test.go.
    #[test]
    fn validate_selector() {
        let cases: Vec<(Vec<LabelSelectorRequirement>, Vec<&str>)> = vec![
            (vec![expression("a", "In", Some(&["x"]))], vec![]),
            (vec![expression("a", "Exists", None)], vec![]),
            (
                vec![expression("a", "In", Some(&[]))],
                vec![
                    "spec.selector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'",
                ],
            ),
            (
                vec![expression("a", "NotIn", None)],
                vec![
                    "spec.selector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'",
                ],
            ),
            (
                vec![expression("a", "Exists", Some(&["x"]))],
                vec![
                    "spec.selector.matchExpressions[0].values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                ],
            ),
            (
                vec![expression("a", "DoesNotExist", Some(&["x"]))],
                vec![
                    "spec.selector.matchExpressions[0].values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                ],
            ),
            (
                vec![expression("a", "Gt", Some(&["1"]))],
                vec![
                    "spec.selector.matchExpressions[0].operator: Invalid value: \"Gt\": not a valid selector operator",
                ],
            ),
            (
                vec![
                    expression("a", "In", Some(&["x"])),
                    expression("b", "In", Some(&["-bad"])),
                ],
                vec![
                    "spec.selector.matchExpressions[1].values[0]: Invalid value: \"-bad\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
                ],
            ),
        ];
        for (expressions, want) in cases {
            let selector = LabelSelector {
                match_labels: None,
                match_expressions: Some(expressions),
            };
            let got: Vec<String> = validate_label_selector(&selector, "spec.selector")
                .iter()
                .map(ToString::to_string)
                .collect();
            assert_eq!(got, want, "{selector:?}");
        }
    }

    #[test]
    fn nul_ends_the_string_like_kubernetes_lexer() {
        assert_eq!(Selector::parse("a=b\0,,,").unwrap().to_string(), "a=b");
    }
}
