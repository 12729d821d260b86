//! The API as the portal calls it: a kube client over the server's authenticated router
//! carrying the signed-in user's bearer token, so every page sees exactly what kubectl
//! with that token would, and the API's answers sorted into what a page shows.

use axum::Router;
use http::{HeaderValue, header};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tower::ServiceExt as _;

/// Why a call to the API did not give what a page needed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// The token no longer authenticates (revoked or expired).
    #[error("the API refused the credentials")]
    Unauthorized,
    /// RBAC or the platform said no.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// The user's own input, refused (bad request, conflict, invalid).
    #[error("{message}")]
    Refused { code: u16, message: String },
    /// Anything else the API answered.
    #[error("the API answered {code}: {message}")]
    Failed { code: u16, message: String },
    /// No answer at all, or one that could not be read.
    #[error("the API could not be reached: {0}")]
    Unreachable(String),
}

impl From<kube::Error> for Error {
    fn from(e: kube::Error) -> Error {
        match e {
            kube::Error::Api(status) => {
                let message = if status.message.is_empty() {
                    format!("{} {}", status.code, status.reason)
                } else {
                    status.message.clone()
                };
                match status.code {
                    401 => Error::Unauthorized,
                    403 => Error::Forbidden(message),
                    404 => Error::NotFound(message),
                    400 | 409 | 422 => Error::Refused {
                        code: status.code,
                        message,
                    },
                    code => Error::Failed { code, message },
                }
            }
            kube::Error::SerdeError(e) => Error::Failed {
                code: 200,
                message: format!("an answer that is not the expected JSON ({e})"),
            },
            other => Error::Unreachable(other.to_string()),
        }
    }
}

/// A client of `upstream` that authenticates every request with `token`.
pub(crate) fn client(upstream: Router, token: &str) -> Result<kube::Client, Error> {
    // A token that cannot be a header value cannot authenticate anyone.
    let mut value =
        HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| Error::Unauthorized)?;
    value.set_sensitive(true);
    let service = upstream.map_request(move |mut request: http::Request<kube::client::Body>| {
        request
            .headers_mut()
            .insert(header::AUTHORIZATION, value.clone());
        request
    });
    Ok(kube::Client::new(service, "default"))
}

/// A JSON request to a platform endpoint; `None` for an empty answer.
pub(crate) async fn send<T: DeserializeOwned>(
    client: &kube::Client,
    method: http::Method,
    path: &str,
    body: Option<&Value>,
) -> Result<T, Error> {
    let request = http::Request::builder().method(method).uri(path);
    let request = match body {
        Some(body) => request
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.to_string().into_bytes()),
        None => request.body(Vec::new()),
    }
    .map_err(|e| Error::Refused {
        code: 400,
        message: format!("cannot build the request: {e}"),
    })?;
    let text = client.request_text(request).await?;
    let text = if text.trim().is_empty() {
        "null"
    } else {
        &text
    };
    serde_json::from_str(text).map_err(|e| Error::Failed {
        code: 200,
        message: format!("an answer that is not the expected JSON ({e})"),
    })
}

/// `segments` as a path under `/slipway/v1`, each percent-encoded so that a name is always
/// one segment.
pub(crate) fn path(segments: &[&str]) -> String {
    let mut path = String::from("/slipway/v1");
    for segment in segments {
        path.push('/');
        path.push_str(&encode(segment));
    }
    path
}

/// `text` percent-encoded for a path segment or a query value.
pub(crate) fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b));
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
