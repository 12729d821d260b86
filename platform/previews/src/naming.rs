//! Names a preview takes: its namespace (a DNS label, unique across repositories) and URL.

/// The longest namespace name Kubernetes accepts (an RFC 1123 label).
const MAX: usize = 63;

/// A repository name as a DNS label fragment: lower case, runs of anything else as one `-`.
fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_owned()
}

fn label(prefix: &str, middle: &str, suffix: &str) -> String {
    let room = MAX.saturating_sub(prefix.len() + suffix.len() + 2);
    let middle: String = middle.chars().take(room).collect();
    let middle = middle.trim_end_matches('-');
    if middle.is_empty() {
        format!("{prefix}-{suffix}")
    } else {
        format!("{prefix}-{middle}-{suffix}")
    }
}

/// The namespaces a pull request's preview may take: `pr-<repo>-<n>`, or, when another
/// repository of the same name has it, `pr-<repo>-<repo id>-<n>`, which no other
/// repository can produce.
pub fn namespaces(repo_name: &str, repo_id: i64, pr: u64) -> [String; 2] {
    let slug = slug(repo_name);
    [
        label("pr", &slug, &pr.to_string()),
        label("pr", &slug, &format!("{repo_id}-{pr}")),
    ]
}

/// Where previews are reached: `<scheme>://<namespace>.<domain>:<port>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UrlBase {
    /// `http` (the gateway serves plain HTTP).
    pub scheme: String,
    /// The domain under which each preview gets a host, `preview.localhost` by default.
    pub domain: String,
    /// The gateway's port; left out of URLs when it is the scheme's default.
    pub port: u16,
}

impl UrlBase {
    /// The host of a preview's Ingress.
    pub fn host(&self, namespace: &str) -> String {
        format!("{namespace}.{}", self.domain)
    }

    /// A preview's URL.
    pub fn url(&self, namespace: &str) -> String {
        let default = matches!(
            (self.scheme.as_str(), self.port),
            ("http", 80) | ("https", 443)
        );
        if default {
            format!("{}://{}/", self.scheme, self.host(namespace))
        } else {
            format!("{}://{}:{}/", self.scheme, self.host(namespace), self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_are_dns_labels() {
        assert_eq!(namespaces("shop", 3, 42), ["pr-shop-42", "pr-shop-3-42"]);
        assert_eq!(namespaces("My_Web.App", 3, 1)[0], "pr-my-web-app-1");
        assert_eq!(namespaces("---", 3, 1)[0], "pr-1");
        let long = "a".repeat(100);
        for name in namespaces(&long, 12345, 987_654) {
            assert!(name.len() <= MAX, "{name}");
            assert!(name.ends_with("987654"));
        }
        let [a, b] = namespaces(&format!("{}-x", "b".repeat(55)), 1, 7);
        assert!(!a.contains("--") && !b.contains("--"), "{a} {b}");
    }

    #[test]
    fn urls_leave_default_ports_out() {
        let mut base = UrlBase {
            scheme: "http".to_owned(),
            domain: "preview.localhost".to_owned(),
            port: 8080,
        };
        assert_eq!(
            base.url("pr-shop-4"),
            "http://pr-shop-4.preview.localhost:8080/"
        );
        base.port = 80;
        assert_eq!(base.url("pr-shop-4"), "http://pr-shop-4.preview.localhost/");
    }
}
