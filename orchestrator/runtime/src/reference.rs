//! Image references spelled out in full, as containerd and Docker do, so that `busybox`,
//! `docker.io/library/busybox` and `docker.io/library/busybox:latest` name one image; and
//! the registry credentials of a pull Secret that apply to a reference.

use base64::Engine;

use crate::Credentials;

/// The host names Docker Hub is known by in pull Secrets; `docker.io` in references.
const DOCKER_HUB: &[&str] = &[
    "docker.io",
    "index.docker.io",
    "registry-1.docker.io",
    "registry.hub.docker.com",
];

/// The full form of an image reference: a registry host (`docker.io` unless the first
/// part looks like one), `library/` for official Docker Hub images, and `:latest` unless
/// a tag or digest is given.
pub fn normalize(reference: &str) -> String {
    let reference = reference.trim();
    let (first, rest) = match reference.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first.to_owned(), rest.to_owned())
        }
        _ => ("docker.io".to_owned(), reference.to_owned()),
    };
    let rest = if first == "docker.io" && !rest.contains('/') {
        format!("library/{rest}")
    } else {
        rest
    };
    let last = rest.rsplit('/').next().unwrap_or(&rest);
    let tagged = last.contains(':') || last.contains('@');
    if tagged {
        format!("{first}/{rest}")
    } else {
        format!("{first}/{rest}:latest")
    }
}

/// The registry host of a reference (`docker.io` for Docker Hub), with its port if any.
pub fn registry_host(reference: &str) -> String {
    let normalized = normalize(reference);
    normalized
        .split_once('/')
        .map_or(normalized.as_str(), |(host, _)| host)
        .to_owned()
}

/// The credentials a `kubernetes.io/dockerconfigjson` Secret's `.dockerconfigjson` (or a
/// legacy `.dockercfg`, the same map without `auths`) holds for `reference`'s registry,
/// as the kubelet picks them: a key is a host, optionally with a scheme and a path
/// (`https://index.docker.io/v1/` is Docker Hub), and the key with the longest path that
/// prefixes the image's repository wins. An entry gives `username` and `password`, or
/// `auth` as base64 of `user:password`. `None` if nothing applies or the document is not
/// JSON. Wildcard hosts (`*.example.com`) are not matched.
pub fn credentials_for(dockerconfigjson: &[u8], reference: &str) -> Option<Credentials> {
    let document: serde_json::Value = serde_json::from_slice(dockerconfigjson).ok()?;
    let auths = document.get("auths").unwrap_or(&document).as_object()?;
    let normalized = normalize(reference);
    let (host, repository) = normalized.split_once('/')?;
    let repository = repository
        .split(['@', ':'])
        .next()
        .unwrap_or(repository)
        .to_owned();
    let host = host.to_ascii_lowercase();
    auths
        .iter()
        .filter_map(|(key, entry)| {
            let (key_host, key_path) = split_key(key);
            let path_matches = key_path.is_empty()
                || repository == key_path
                || repository.starts_with(&format!("{key_path}/"));
            (key_host == host && path_matches).then_some((key_path.len(), entry))
        })
        .filter_map(|(specificity, entry)| Some((specificity, entry_credentials(entry)?)))
        .max_by_key(|(specificity, _)| *specificity)
        .map(|(_, credentials)| credentials)
}

/// A config key as (host, repository path): scheme dropped, host lower-cased, Docker Hub's
/// aliases and API version paths (`/v1/`, `/v2/`) folded away.
fn split_key(key: &str) -> (String, String) {
    let key = key.trim();
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let (host, path) = key.split_once('/').unwrap_or((key, ""));
    let mut host = host.to_ascii_lowercase();
    if DOCKER_HUB.contains(&host.as_str()) {
        "docker.io".clone_into(&mut host);
    }
    let path = path.trim_matches('/');
    let path = if matches!(path, "v1" | "v2") {
        ""
    } else {
        path
    };
    (host, path.to_owned())
}

fn entry_credentials(entry: &serde_json::Value) -> Option<Credentials> {
    let field = |name: &str| entry.get(name).and_then(|v| v.as_str()).unwrap_or_default();
    let (username, password) = (field("username"), field("password"));
    if !username.is_empty() && !password.is_empty() {
        return Some(Credentials {
            username: username.to_owned(),
            password: password.to_owned(),
        });
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(field("auth").trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (username, password) = decoded.split_once(':')?;
    Some(Credentials {
        username: username.to_owned(),
        password: password.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::{credentials_for, normalize, registry_host};
    use crate::Credentials;

    fn creds(username: &str, password: &str) -> Option<Credentials> {
        Some(Credentials {
            username: username.to_owned(),
            password: password.to_owned(),
        })
    }

    #[test]
    fn registry_hosts() {
        assert_eq!(registry_host("busybox"), "docker.io");
        assert_eq!(registry_host("127.0.0.1:5000/a/b:2"), "127.0.0.1:5000");
        assert_eq!(registry_host("ghcr.io/me/app@sha256:abc"), "ghcr.io");
    }

    #[test]
    fn pull_secrets_give_the_credentials_of_the_reference_s_registry() {
        // `auth` is base64("hub:hubpass").
        let config = br#"{"auths": {
            "https://index.docker.io/v1/": {"auth": "aHViOmh1YnBhc3M="},
            "ghcr.io": {"username": "gh", "password": "ghpass", "auth": "aWdub3JlZDppZ25vcmVk"},
            "http://127.0.0.1:5000": {"username": "local", "password": "localpass"},
            "registry.example.com/team": {"username": "team", "password": "t"},
            "registry.example.com": {"username": "all", "password": "a"},
            "broken.example.com": {"auth": "not base64!"}
        }}"#;
        assert_eq!(credentials_for(config, "busybox"), creds("hub", "hubpass"));
        assert_eq!(
            credentials_for(config, "docker.io/me/app:1"),
            creds("hub", "hubpass")
        );
        assert_eq!(
            credentials_for(config, "ghcr.io/me/app"),
            creds("gh", "ghpass")
        );
        assert_eq!(
            credentials_for(config, "127.0.0.1:5000/app:1"),
            creds("local", "localpass")
        );
        assert_eq!(
            credentials_for(config, "registry.example.com/team/app:1"),
            creds("team", "t")
        );
        assert_eq!(
            credentials_for(config, "registry.example.com/teamwork/app"),
            creds("all", "a")
        );
        assert_eq!(credentials_for(config, "127.0.0.1:5001/app"), None);
        assert_eq!(credentials_for(config, "quay.io/app"), None);
        assert_eq!(credentials_for(config, "broken.example.com/app"), None);
        assert_eq!(credentials_for(b"not json", "busybox"), None);
    }

    #[test]
    fn legacy_dockercfg_has_no_auths_wrapper() {
        let config = br#"{"registry-1.docker.io": {"username": "u", "password": "p"}}"#;
        assert_eq!(credentials_for(config, "library/busybox"), creds("u", "p"));
    }

    #[test]
    fn passwords_do_not_print() {
        let printed = format!("{:?}", creds("me", "s3cret"));
        assert!(
            printed.contains("me") && !printed.contains("s3cret"),
            "{printed}"
        );
    }

    #[test]
    fn references_are_spelled_out() {
        assert_eq!(normalize("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(normalize("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(normalize("me/app"), "docker.io/me/app:latest");
        assert_eq!(
            normalize("docker.io/library/busybox:latest"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(normalize("slipway.local/web:1"), "slipway.local/web:1");
        assert_eq!(normalize("localhost:5000/web"), "localhost:5000/web:latest");
        assert_eq!(normalize("127.0.0.1:5000/a/b:2"), "127.0.0.1:5000/a/b:2");
        assert_eq!(
            normalize("busybox@sha256:abc"),
            "docker.io/library/busybox@sha256:abc"
        );
    }
}
