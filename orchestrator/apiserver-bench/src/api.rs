//! A keep-alive HTTP/1.1 client for the API server: hyper-util's pooled client, so each
//! concurrent client reuses its connection as kubectl and client-go do.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::CONTENT_TYPE;
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

pub(crate) struct Api {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
}

impl Api {
    pub(crate) fn new(addr: SocketAddr) -> Api {
        let mut connector = HttpConnector::new();
        // Small requests would otherwise wait on Nagle's algorithm behind delayed ACKs.
        connector.set_nodelay(true);
        Api {
            client: Client::builder(TokioExecutor::new()).build(connector),
            base: format!("http://{addr}"),
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> anyhow::Result<hyper::Response<Incoming>> {
        let request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(body))?;
        Ok(self.client.request(request).await?)
    }

    /// Sends a request and reads the whole answer, which must have the `expected` status.
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
        expected: StatusCode,
    ) -> anyhow::Result<Bytes> {
        let response = self.send(method.clone(), path, body).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        anyhow::ensure!(
            status == expected,
            "{method} {path}: {status}: {}",
            String::from_utf8_lossy(&body)
        );
        Ok(body)
    }

    /// Opens a watch. The server answers only once its store watch exists, so a write
    /// started after this returns is timed against a watcher that is already listening.
    pub(crate) async fn watch(&self, path: &str) -> anyhow::Result<Incoming> {
        let response = self.send(Method::GET, path, Bytes::new()).await?;
        anyhow::ensure!(
            response.status() == StatusCode::OK,
            "GET {path}: {}",
            response.status()
        );
        Ok(response.into_body())
    }
}
