//! `slipway port-forward`: local ports on 127.0.0.1 forwarded to a pod's ports (found
//! through a Service or Deployment too), one `portforward.k8s.io` SPDY session through the
//! API server per accepted connection.

use bytes::{Bytes, BytesMut};
use futures::FutureExt as _;
use http::{HeaderMap, HeaderValue};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use slipway_spdy::{Frame, HeaderCompressor, HeaderDecompressor};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::pods;
use super::target::Target;
use crate::exit::Failure;

/// Forward local ports (on 127.0.0.1 only) to a pod, a Service or a deployment.
///
/// Each PORT is LOCAL:REMOTE, PORT for the same number on both sides, or :REMOTE for any
/// free local port. For svc/NAME the REMOTE ports are the Service's, forwarded to its
/// target ports on one of its pods.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  slipway port-forward web-7d4b9c-x2x8q 8080:80\n  \
    slipway port-forward svc/web :80\n  slipway port-forward deployment/web 5000 6000"
)]
pub(crate) struct PortForwardArgs {
    /// POD, pod/NAME, deployment/NAME or svc/NAME
    #[arg(value_name = "POD|svc/NAME|deployment/NAME")]
    what: String,
    /// LOCAL:REMOTE, PORT or :REMOTE (repeatable)
    #[arg(required = true, value_name = "PORT")]
    ports: Vec<String>,
    #[command(flatten)]
    target: Target,
}

/// One requested forward: the local port (0 for any) and the remote one as asked.
#[derive(Debug, PartialEq, Eq)]
struct Mapping {
    local: u16,
    remote: u16,
}

fn mapping(text: &str) -> Result<Mapping, Failure> {
    let port = |part: &str, zero: bool| -> Result<u16, Failure> {
        part.parse::<u16>()
            .ok()
            .filter(|p| zero || *p != 0)
            .ok_or_else(|| {
                Failure::bad_input(format!("{text:?} is not LOCAL:REMOTE, PORT or :REMOTE"))
            })
    };
    match text.split_once(':') {
        None => Ok(Mapping {
            local: port(text, false)?,
            remote: port(text, false)?,
        }),
        Some(("", remote)) => Ok(Mapping {
            local: 0,
            remote: port(remote, false)?,
        }),
        Some((local, remote)) => Ok(Mapping {
            local: port(local, true)?,
            remote: port(remote, false)?,
        }),
    }
}

/// The pod port a Service port forwards to.
fn target_port(service: &Service, pod: &Pod, port: u16) -> Result<u16, Failure> {
    let name = service.metadata.name.as_deref().unwrap_or_default();
    let spec_port = service
        .spec
        .iter()
        .flat_map(|s| s.ports.iter().flatten())
        .find(|p| p.port == i32::from(port))
        .ok_or_else(|| {
            Failure::bad_input(format!(
                "service {name} does not have a service port {port}"
            ))
        })?;
    let number = match &spec_port.target_port {
        None => i32::from(port),
        Some(IntOrString::Int(n)) => *n,
        Some(IntOrString::String(named)) => pod
            .spec
            .iter()
            .flat_map(|s| &s.containers)
            .flat_map(|c| c.ports.iter().flatten())
            .find(|p| p.name.as_deref() == Some(named.as_str()))
            .map(|p| p.container_port)
            .ok_or_else(|| {
                Failure::failed(format!(
                    "the pod has no port named {named} for service {name}"
                ))
            })?,
    };
    u16::try_from(number)
        .map_err(|_| Failure::failed(format!("target port {number} is not a port")))
}

pub(crate) async fn port_forward(
    args: PortForwardArgs,
    shutdown: CancellationToken,
) -> Result<(), Failure> {
    let mappings: Vec<Mapping> = args
        .ports
        .iter()
        .map(|p| mapping(p))
        .collect::<Result<_, _>>()?;
    let named = pods::parse(&args.what, true)?;
    let session = args.target.connect()?;
    let (pod, service) = pods::pod_of(&session, &named).await?;
    let name = pod.metadata.name.clone().unwrap_or_default();
    let remotes: Vec<u16> = mappings
        .iter()
        .map(|m| match &service {
            Some(service) => target_port(service, &pod, m.remote),
            None => Ok(m.remote),
        })
        .collect::<Result<_, _>>()?;
    let phase = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default();
    if phase != "Running" {
        return Err(Failure::failed(format!(
            "unable to forward port because pod is not running. Current status={phase}"
        )));
    }
    let mut listeners = Vec::new();
    for (mapping, remote) in mappings.iter().zip(remotes) {
        let listener = TcpListener::bind(("127.0.0.1", mapping.local))
            .await
            .map_err(|e| {
                Failure::failed(format!("cannot listen on 127.0.0.1:{}: {e}", mapping.local))
            })?;
        let local = listener
            .local_addr()
            .map_err(|e| Failure::failed(format!("cannot read the listening address: {e}")))?;
        say!("Forwarding from {local} -> {remote}");
        listeners.push((listener, remote));
    }
    let path = format!(
        "/api/v1/namespaces/{}/pods/{name}/portforward",
        session.namespace
    );
    let serving = listeners.into_iter().map(|(listener, remote)| {
        let client = session.client.clone();
        let path = path.clone();
        let name = name.clone();
        async move {
            loop {
                let (connection, _) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        eprintln!("error: cannot accept a connection: {e}");
                        // Out of descriptors, say: give connections in flight time to end.
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let local = listener.local_addr().map(|a| a.port()).unwrap_or_default();
                say!("Handling connection for {local}");
                let (client, path, name) = (client.clone(), path.clone(), name.clone());
                tokio::spawn(async move {
                    if let Err(e) = forward(&client, &path, remote, connection).await {
                        eprintln!("error forwarding port {remote} to pod {name}: {e}");
                    }
                });
            }
        }
    });
    tokio::select! {
        () = shutdown.cancelled() => Ok(()),
        () = futures::future::join_all(serving).map(drop) => Ok(()),
    }
}

/// Carries one local connection to `port` in the pod over a SPDY session of its own.
async fn forward(
    client: &kube::Client,
    path: &str,
    port: u16,
    local: TcpStream,
) -> Result<(), String> {
    let request = http::Request::post(path)
        .header(http::header::CONNECTION, "Upgrade")
        .header(http::header::UPGRADE, "SPDY/3.1")
        .header("X-Stream-Protocol-Version", "portforward.k8s.io")
        .body(kube::client::Body::from(Vec::new()))
        .map_err(|e| e.to_string())?;
    let response = client
        .send(request)
        .await
        .map_err(|e| format!("cannot reach the API server: {e}"))?;
    if response.status() != http::StatusCode::SWITCHING_PROTOCOLS {
        let status = response.status();
        let body = response
            .into_body()
            .collect_bytes()
            .await
            .unwrap_or_default();
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| format!("the server answered {status}"));
        return Err(message);
    }
    let upgraded = hyper::upgrade::on(response)
        .await
        .map_err(|e| format!("the upgrade failed: {e}"))?;
    let (remote_read, mut remote_write) = tokio::io::split(TokioIo::new(upgraded));
    let (frames, mut outgoing) = mpsc::channel::<Frame>(16);
    // One task writes, so header blocks reach the compressor in wire order.
    let mut compressor = HeaderCompressor::new().map_err(|e| e.to_string())?;
    let writer = tokio::spawn(async move {
        let mut wire = Vec::new();
        while let Some(frame) = outgoing.recv().await {
            wire.clear();
            if slipway_spdy::encode(&frame, &mut compressor, &mut wire).is_err()
                || remote_write.write_all(&wire).await.is_err()
            {
                return;
            }
        }
        let _ = remote_write.shutdown().await;
    });
    let (mut local_read, local_write) = local.into_split();
    let (replies, mut replied) = mpsc::unbounded_channel();
    let reader = tokio::spawn(read_frames(
        remote_read,
        local_write,
        frames.clone(),
        replies,
    ));
    let send = |frame: Frame| {
        let frames = frames.clone();
        async move {
            frames
                .send(frame)
                .await
                .map_err(|_| "the session ended".to_owned())
        }
    };
    // As kubectl does: an error stream, closed at once from this side, then the data
    // stream, each opened only once the server accepted the one before.
    for (stream_id, kind) in [(ERROR_STREAM, "error"), (DATA_STREAM, "data")] {
        let mut headers = HeaderMap::new();
        headers.insert("streamtype", HeaderValue::from_static(kind));
        headers.insert("port", HeaderValue::from(port));
        headers.insert("requestid", HeaderValue::from_static("0"));
        send(Frame::SynStream {
            stream_id,
            associated_to: 0,
            priority: 0,
            fin: false,
            unidirectional: false,
            headers,
        })
        .await?;
        if replied.recv().await != Some(stream_id) {
            return Err("the node refused the forward".to_owned());
        }
        if stream_id == ERROR_STREAM {
            send(data(ERROR_STREAM, true, Bytes::new())).await?;
        }
    }
    let uploading = tokio::spawn({
        let frames = frames.clone();
        async move {
            let mut buffer = vec![0; 32 * 1024];
            loop {
                match local_read.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let chunk = Bytes::copy_from_slice(&buffer[..n]);
                        if frames.send(data(DATA_STREAM, false, chunk)).await.is_err() {
                            return;
                        }
                    }
                }
            }
            let _ = frames.send(data(DATA_STREAM, true, Bytes::new())).await;
        }
    });
    drop(frames);
    let outcome = reader.await.map_err(|e| e.to_string())?;
    uploading.abort();
    writer.abort();
    match outcome {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// The stream kubectl's protocol reports failures on, opened first.
const ERROR_STREAM: u32 = 1;
/// The stream carrying the connection's bytes.
const DATA_STREAM: u32 = 3;

fn data(stream_id: u32, fin: bool, data: Bytes) -> Frame {
    Frame::Data {
        stream_id,
        fin,
        data,
    }
}

/// Reads the server's frames until the data stream ends: its bytes go to the local
/// connection, pings are echoed, replies reported. Returns what the error stream said,
/// or why the session broke.
async fn read_frames(
    mut remote: tokio::io::ReadHalf<TokioIo<hyper::upgrade::Upgraded>>,
    mut local: tokio::net::tcp::OwnedWriteHalf,
    frames: mpsc::Sender<Frame>,
    replies: mpsc::UnboundedSender<u32>,
) -> Option<String> {
    let mut error = Vec::new();
    let mut broken = None;
    let mut buffer = BytesMut::with_capacity(64 * 1024);
    let mut decompressor = HeaderDecompressor::new();
    'session: while matches!(remote.read_buf(&mut buffer).await, Ok(n) if n > 0) {
        loop {
            let frame = match slipway_spdy::decode(&mut buffer, &mut decompressor) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => {
                    broken = Some(format!("the node's SPDY session broke: {e}"));
                    break 'session;
                }
            };
            match frame {
                Frame::SynReply { stream_id, .. } => {
                    let _ = replies.send(stream_id);
                }
                Frame::Data {
                    stream_id: ERROR_STREAM,
                    data,
                    ..
                } => error.extend_from_slice(&data),
                Frame::Data {
                    stream_id: DATA_STREAM,
                    fin,
                    data,
                } => {
                    let written = local.write_all(&data).await;
                    if written.is_err() || fin {
                        break 'session;
                    }
                }
                Frame::Ping { id } => {
                    let _ = frames.send(Frame::Ping { id }).await;
                }
                Frame::RstStream {
                    stream_id: DATA_STREAM,
                    ..
                }
                | Frame::GoAway { .. } => break 'session,
                _ => {}
            }
        }
    }
    let _ = local.shutdown().await;
    let error = String::from_utf8_lossy(&error).trim().to_owned();
    (!error.is_empty()).then_some(error).or(broken)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_local_and_remote() {
        assert_eq!(
            mapping("8080:80").unwrap(),
            Mapping {
                local: 8080,
                remote: 80
            }
        );
        assert_eq!(
            mapping("5000").unwrap(),
            Mapping {
                local: 5000,
                remote: 5000
            }
        );
        assert_eq!(
            mapping(":80").unwrap(),
            Mapping {
                local: 0,
                remote: 80
            }
        );
        for bad in ["", "x", "80:", "0", "1:70000", "a:b"] {
            assert_eq!(mapping(bad).unwrap_err().code(), 2, "{bad}");
        }
    }
}
