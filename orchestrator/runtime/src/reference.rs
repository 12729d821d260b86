//! Image references spelled out in full, as containerd and Docker do, so that `busybox`,
//! `docker.io/library/busybox` and `docker.io/library/busybox:latest` name one image.

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

#[cfg(test)]
mod tests {
    use super::normalize;

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
