//! `kubectl port-forward` on the agent: the API server relays the upgrade here, and the
//! agent speaks `portforward.k8s.io` over SPDY (in kubectl 1.32's WebSocket tunnel, or a
//! plain SPDY upgrade) through `slipway-spdy`, connecting to each requested port on
//! localhost inside the pod's network namespace, as the kubelet does.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path as UrlPath, Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use hyper_util::rt::TokioIo;
use slipway_net::Netns;
use slipway_spdy::{
    Dial, PORT_FORWARD_PROTOCOL, PortForwardOptions, negotiate, serve_port_forward,
};

use super::{read_pod, status};
use crate::{Context, sandbox};

/// How long the two streams of one forwarded connection may arrive apart (the kubelet's
/// default).
const STREAM_CREATION: Duration = Duration::from_secs(30);

/// Connects inside the pod's namespace.
struct InPod(Netns);

impl Dial for InPod {
    type Conn = tokio::net::TcpStream;

    fn dial(&self, port: u16) -> impl Future<Output = std::io::Result<Self::Conn>> + Send {
        let netns = self.0.clone();
        async move {
            netns
                .connect(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
                .await
        }
    }
}

/// Serves `GET|POST /portForward/{namespace}/{pod}`.
pub(super) async fn port_forward(
    State(ctx): State<Arc<Context>>,
    UrlPath((namespace, name)): UrlPath<(String, String)>,
    mut request: Request,
) -> Response {
    let pod = match read_pod(&ctx, &namespace, &name).await {
        Ok(pod) => pod,
        Err(answer) => return answer,
    };
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let path = PathBuf::from(sandbox::netns_path(&sandbox::netns_name(&uid)));
    if uid.is_empty() || !path.exists() {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!("pod \"{name}\" has no network namespace on this node yet"),
        );
    }
    let negotiated = match negotiate(request.headers(), &[PORT_FORWARD_PROTOCOL]) {
        Ok(negotiated) => negotiated,
        Err(e) => return status(e.status(), "BadRequest", &e.to_string()),
    };
    let netns = match Netns::open(&path).await {
        Ok(netns) => netns,
        Err(e) => {
            return status(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                &format!("cannot enter the pod's network namespace: {e}"),
            );
        }
    };
    let upgrade = hyper::upgrade::on(&mut request);
    let answer = negotiated.response_headers();
    let options = PortForwardOptions {
        pod: format!("{name}_{namespace}"),
        uid,
        stream_creation_timeout: STREAM_CREATION,
    };
    let stop = ctx.streams.clone();
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else { return };
        let io = negotiated.wrap(TokioIo::new(upgraded));
        if let Err(e) = serve_port_forward(io, InPod(netns), options, stop).await {
            tracing::debug!(error = %e, "a port-forward session ended with an error");
        }
    });
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    response.headers_mut().extend(answer);
    response
}
