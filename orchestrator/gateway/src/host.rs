//! The host a request is for, as routing compares it: lowercase, without port or trailing dot.

use hyper::Version;
use hyper::header::{HOST, HeaderMap};
use hyper::http::uri::{Authority, Uri};

/// Why a request's host cannot be routed; answered with a 400.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum HostError {
    /// An HTTP/1.1 request without a Host header (RFC 9112 §3.2).
    #[error("HTTP/1.1 requests need a Host header")]
    Missing,
    /// More than one Host header.
    #[error("more than one Host header")]
    Repeated,
    /// A Host header (or absolute-form target) that is not `host[:port]`.
    #[error("the Host header is not a host name with an optional port")]
    Malformed,
}

/// The host of an absolute-form target if there is one (RFC 9112 §3.2.2 says it wins over
/// the Host header), else of the Host header; empty when an HTTP/1.0 request names none,
/// which only host-less rules match.
pub(crate) fn request_host(
    version: Version,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<String, HostError> {
    if let Some(authority) = uri.authority() {
        return host_of(authority);
    }
    let mut values = headers.get_all(HOST).iter();
    let Some(value) = values.next() else {
        return if version == Version::HTTP_10 {
            Ok(String::new())
        } else {
            Err(HostError::Missing)
        };
    };
    if values.next().is_some() {
        return Err(HostError::Repeated);
    }
    let authority = value
        .to_str()
        .ok()
        .and_then(|value| value.parse::<Authority>().ok())
        .ok_or(HostError::Malformed)?;
    host_of(&authority)
}

fn host_of(authority: &Authority) -> Result<String, HostError> {
    if authority.as_str().contains('@') {
        return Err(HostError::Malformed);
    }
    let host = authority.host();
    let valid = if let Some(inner) = host.strip_prefix('[') {
        inner
            .strip_suffix(']')
            .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok())
    } else {
        !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
    };
    // The authority parser lets any port text through.
    let port = &authority.as_str()[host.len()..];
    let valid_port = port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|digits| digits.len() <= 5 && digits.bytes().all(|b| b.is_ascii_digit()));
    if !valid || !valid_port {
        return Err(HostError::Malformed);
    }
    let host = host.strip_suffix('.').unwrap_or(host);
    Ok(host.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use hyper::header::HeaderValue;

    use super::*;

    fn host(uri: &str, headers: &[&str]) -> Result<String, HostError> {
        host_in(Version::HTTP_11, uri, headers)
    }

    fn host_in(version: Version, uri: &str, headers: &[&str]) -> Result<String, HostError> {
        let mut map = HeaderMap::new();
        for value in headers {
            map.append(HOST, HeaderValue::from_str(value).unwrap());
        }
        request_host(version, &uri.parse().unwrap(), &map)
    }

    #[test]
    fn host_header_is_lowercased_without_port_or_trailing_dot() {
        assert_eq!(
            host("/", &["App.Preview.LOCALHOST:8080"]),
            Ok("app.preview.localhost".into())
        );
        assert_eq!(host("/", &["example.com."]), Ok("example.com".into()));
        assert_eq!(host("/", &["[::1]:8080"]), Ok("[::1]".into()));
        assert_eq!(host("/", &["127.0.0.1"]), Ok("127.0.0.1".into()));
    }

    #[test]
    fn absolute_form_target_wins_over_the_host_header() {
        assert_eq!(
            host("http://a.example.com:81/x", &["b.example.com"]),
            Ok("a.example.com".into())
        );
    }

    #[test]
    fn no_host_is_the_empty_host_in_http_1_0_only() {
        assert_eq!(host_in(Version::HTTP_10, "/", &[]), Ok(String::new()));
        assert_eq!(host("/", &[]), Err(HostError::Missing));
    }

    #[test]
    fn bad_hosts_are_refused() {
        assert_eq!(host("/", &["a.com", "b.com"]), Err(HostError::Repeated));
        for bad in [
            "",
            "a b",
            "user@a.com",
            "a.com:x",
            "[zz]",
            "a/b",
            "a.com:80:80",
            "<script>",
        ] {
            assert_eq!(host("/", &[bad]), Err(HostError::Malformed), "{bad:?}");
        }
    }
}
