//! The gateway's own answers: small pages that say what went wrong and what to check.
//!
//! Each is one inline HTML page (no external assets), or JSON for a client that asks for JSON
//! and not HTML. None may be cached: the app behind a 404 or 503 may be there a second later.

use std::fmt::Write as _;
use std::time::Duration;

use hyper::header::{CACHE_CONTROL, CONNECTION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::{Response, StatusCode};

use crate::body::ResponseBody;
use crate::routes::INGRESS_CLASS;
use crate::upstream::{Backend, UpstreamError};

/// How long a client should wait before asking again for a backend that is not ready.
const RETRY_AFTER_SECONDS: u64 = 2;

/// What the gateway could not do.
#[derive(Debug)]
pub(crate) enum Problem<'a> {
    /// The request cannot be routed as it is.
    BadRequest(&'a str),
    /// `CONNECT`: the gateway is no forward proxy.
    Connect,
    /// No Ingress routes this host and path.
    NoRoute {
        host: &'a str,
        path: &'a str,
        /// An Ingress names the host, just none of its paths matches.
        host_known: bool,
    },
    /// The route's Service does not exist or has no ready endpoint.
    NotReady {
        backend: &'a Backend,
        error: &'a UpstreamError,
    },
    /// The app was asleep and has not woken within the time the gateway holds a request.
    Waking { backend: &'a Backend },
    /// The endpoint could not be reached, or answered badly.
    BadGateway {
        backend: &'a Backend,
        detail: &'a str,
    },
    /// No response head within the request timeout.
    Timeout {
        backend: &'a Backend,
        timeout: Duration,
    },
}

impl Problem<'_> {
    fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Connect => StatusCode::METHOD_NOT_ALLOWED,
            Self::NoRoute { .. } => StatusCode::NOT_FOUND,
            Self::NotReady { .. } | Self::Waking { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::BadGateway { .. } => StatusCode::BAD_GATEWAY,
            Self::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// The page's heading and its paragraphs, as plain text.
    fn text(&self) -> (String, Vec<String>) {
        match self {
            Self::BadRequest(reason) => (
                "Bad request".to_owned(),
                vec![format!("The gateway cannot route this request: {reason}.")],
            ),
            Self::Connect => (
                "CONNECT is not served".to_owned(),
                vec!["This is an Ingress gateway, not a forward proxy.".to_owned()],
            ),
            Self::NoRoute {
                host: "",
                path: _,
                host_known: _,
            } => (
                "No app here".to_owned(),
                vec!["The request names no host, and no Ingress routes requests without one.".to_owned()],
            ),
            Self::NoRoute {
                host,
                path,
                host_known: true,
            } => (
                format!("No app at {host}{path}"),
                vec![
                    format!("An Ingress names the host {host}, but none of its paths matches {path} and it has no defaultBackend."),
                    "Check the Ingress's paths (kubectl get ingress -A -o yaml): a Prefix path matches whole path elements, so /app matches /app and /app/x but not /apps.".to_owned(),
                ],
            ),
            Self::NoRoute { host, .. } => (
                format!("No app at {host}"),
                vec![
                    format!("No Ingress routes the host {host}."),
                    format!("Check that an Ingress names this host in spec.rules[].host (kubectl get ingress -A), that its ingressClassName is empty or {INGRESS_CLASS}, and that the address is spelled as the Ingress spells it."),
                ],
            ),
            Self::NotReady { backend, error } => {
                let Backend { namespace, service, port } = backend;
                let why = match error {
                    UpstreamError::UnknownService => format!(
                        "the Service {service} with port {port} does not exist in namespace {namespace} (yet)"
                    ),
                    _ => format!(
                        "the Service {service} has no ready endpoint yet: its pods are starting, or failing their readiness probes"
                    ),
                };
                (
                    format!("{namespace}/{service} is not ready yet"),
                    vec![
                        format!("The Ingress routes here, but {why}."),
                        "This page reloads by itself; retry shortly.".to_owned(),
                        format!("If it stays: kubectl -n {namespace} get service,endpoints,pods and kubectl -n {namespace} describe pods."),
                    ],
                )
            }
            Self::Waking { backend } => (
                format!("Waking up {}", backend.namespace),
                vec![
                    "This app was asleep after a while without requests; it is starting again.".to_owned(),
                    "This page reloads by itself in a moment.".to_owned(),
                ],
            ),
            Self::BadGateway { backend, detail } => (
                format!("{}/{} did not answer", backend.namespace, backend.service),
                vec![
                    format!("The gateway could not get a response from {backend}: {detail}."),
                    format!("Check that the container listens on the Service's targetPort, and its logs: kubectl -n {} logs <pod>.", backend.namespace),
                ],
            ),
            Self::Timeout { backend, timeout } => (
                format!("{}/{} did not answer in time", backend.namespace, backend.service),
                vec![format!(
                    "{backend} sent no response within {} s.",
                    timeout.as_secs_f64()
                )],
            ),
        }
    }
}

/// The response for `problem`: HTML, or JSON when `json`.
pub(crate) fn page(problem: &Problem<'_>, json: bool) -> Response<ResponseBody> {
    let status = problem.status();
    let (title, paragraphs) = problem.text();
    let not_ready = matches!(problem, Problem::NotReady { .. } | Problem::Waking { .. });
    let (content_type, body) = if json {
        let body = serde_json::json!({
            "status": status.as_u16(),
            "title": title,
            "detail": paragraphs,
        });
        ("application/json", body.to_string())
    } else {
        (
            "text/html; charset=utf-8",
            html(status, &title, &paragraphs, not_ready),
        )
    };
    let mut response = Response::new(ResponseBody::full(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if not_ready {
        headers.insert(RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
    }
    if matches!(problem, Problem::BadRequest(_) | Problem::Connect) {
        // Whatever sent it may not frame its next request right either.
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

fn html(status: StatusCode, title: &str, paragraphs: &[String], reload: bool) -> String {
    let mut page = String::with_capacity(1024);
    page.push_str("<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    page.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    if reload {
        let _ = writeln!(
            page,
            "<meta http-equiv=\"refresh\" content=\"{RETRY_AFTER_SECONDS}\">"
        );
    }
    let _ = writeln!(page, "<title>{}</title>", escape(title));
    page.push_str(
        "<style>body{font-family:system-ui,sans-serif;margin:3em auto;max-width:40em;padding:0 1em;\
         color:#222;line-height:1.5}h1{font-size:1.4em}code{background:#f2f2f2;padding:0 .2em}\
         .status{color:#777;font-size:.9em}</style>\n</head>\n<body>\n",
    );
    let _ = writeln!(page, "<h1>{}</h1>", escape(title));
    for paragraph in paragraphs {
        let _ = writeln!(page, "<p>{}</p>", escape(paragraph));
    }
    let _ = writeln!(
        page,
        "<p class=\"status\">{} {} · slipway gateway</p>\n</body>\n</html>",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    page
}

fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    async fn body(response: Response<ResponseBody>) -> String {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn pages_escape_what_the_request_said() {
        let problem = Problem::NoRoute {
            host: "a<b>",
            path: "/\"x\"&",
            host_known: true,
        };
        let html = body(page(&problem, false)).await;
        assert!(
            html.contains("No app at a&lt;b&gt;/&quot;x&quot;&amp;"),
            "{html}"
        );
        assert!(!html.contains("<b>"));
    }

    #[tokio::test]
    async fn json_pages_carry_status_and_title() {
        let backend = Backend {
            namespace: "demo".into(),
            service: "web".into(),
            port: crate::ServicePort::Number(80),
        };
        let response = page(
            &Problem::NotReady {
                backend: &backend,
                error: &UpstreamError::NoReadyEndpoint,
            },
            true,
        );
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
        let json: serde_json::Value = serde_json::from_str(&body(response).await).unwrap();
        assert_eq!(json["status"], 503);
        assert_eq!(json["title"], "demo/web is not ready yet");
    }
}
