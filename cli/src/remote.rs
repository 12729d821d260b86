//! A kube client for an API server in another process: plain HTTP (loopback only) or
//! HTTPS verified against the server's CA, with a bearer token. The workspace's kube has
//! no TLS feature, so the connection is made here with the rustls the server uses.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioIo};
use kube::client::ConfigExt as _;
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject as _};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::exit::Failure;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A client of the API at `server` (`http://` or `https://`), authenticating with `token`;
/// `ca_pem` is the CA an `https://` server's certificate must chain to.
pub(crate) fn client(
    server: &str,
    token: &str,
    ca_pem: Option<&str>,
) -> Result<kube::Client, Failure> {
    let url: http::Uri = server
        .parse()
        .map_err(|e| Failure::bad_input(format!("--server {server:?} is not a URL: {e}")))?;
    let tls = match url.scheme_str() {
        Some("https") => {
            let Some(ca_pem) = ca_pem else {
                return Err(Failure::bad_input(
                    "an https:// server needs --ca-file (the server's DATA_DIR/pki/ca.crt)",
                ));
            };
            Some(tls_connector(ca_pem)?)
        }
        Some("http") => {
            let loopback = url.host().is_some_and(|h| {
                h == "localhost"
                    || h.parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
            });
            if !loopback {
                return Err(Failure::bad_input(format!(
                    "plain http:// is allowed to loopback servers only, not {server}"
                )));
            }
            None
        }
        _ => {
            return Err(Failure::bad_input(format!(
                "--server {server:?} must start with https:// or http://"
            )));
        }
    };
    let mut config = kube::Config::new(url);
    config.auth_info.token = Some(token.to_owned().into());
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    let connector = Connector { http, tls };
    let hyper = hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build(connector);
    let auth = config
        .auth_layer()
        .map_err(|e| Failure::bad_input(format!("the token cannot be used: {e}")))?;
    let service = tower::ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(auth)
        .map_err(BoxError::from)
        .service(hyper);
    Ok(kube::Client::new(service, config.default_namespace))
}

fn tls_connector(ca_pem: &str) -> Result<tokio_rustls::TlsConnector, Failure> {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        let certificate =
            certificate.map_err(|e| Failure::bad_input(format!("the CA file is not PEM: {e}")))?;
        roots
            .add(certificate)
            .map_err(|e| Failure::bad_input(format!("the CA file holds a bad certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(Failure::bad_input("the CA file holds no certificate"));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Failure::failed(format!("preparing TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

#[derive(Clone)]
struct Connector {
    http: HttpConnector,
    tls: Option<tokio_rustls::TlsConnector>,
}

impl tower::Service<http::Uri> for Connector {
    type Response = Stream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Stream, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        tower::Service::<http::Uri>::poll_ready(&mut self.http, cx).map_err(Into::into)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let connecting = tower::Service::call(&mut self.http, uri.clone());
        let tls = self.tls.clone();
        Box::pin(async move {
            let tcp = connecting.await?;
            let Some(tls) = tls else {
                return Ok(Stream::Plain(tcp));
            };
            let host = uri
                .host()
                .unwrap_or_default()
                .trim_matches(['[', ']'])
                .to_owned();
            let name = ServerName::try_from(host)?;
            let stream = tls.connect(name, tcp.into_inner()).await?;
            Ok(Stream::Tls(Box::new(TokioIo::new(stream))))
        })
    }
}

/// A connection to the API, with or without TLS.
enum Stream {
    Plain(TokioIo<TcpStream>),
    Tls(Box<TokioIo<TlsStream<TcpStream>>>),
}

impl Connection for Stream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl Read for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl Write for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
