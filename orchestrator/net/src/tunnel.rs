//! The node-to-node tunnel: how a proxy reaches an endpoint on another node. The client
//! connects to the remote agent's tunnel port and sends one line naming the endpoint with
//! a key derived from the cluster secret; the remote agent answers `OK` and splices the
//! connection to the endpoint inside its pod's namespace, or answers `ERR` and closes.
//! A connection without the key reaches nothing.

use std::io;
use std::net::{SocketAddr, SocketAddrV4};
use std::time::Duration;

use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;

const MAGIC: &str = "SLIPWAY-TUNNEL/1";
/// The longest first line either side accepts.
const MAX_LINE: usize = 256;
/// How long either side waits for the other's line.
const HANDSHAKE: Duration = Duration::from_secs(5);

/// The key tunnels authenticate with: derived from the cluster secret, so the secret
/// itself never crosses the wire.
#[derive(Clone)]
pub struct TunnelKey(String);

impl std::fmt::Debug for TunnelKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TunnelKey(..)")
    }
}

impl TunnelKey {
    /// Derives the key from the cluster secret.
    pub fn derive(secret: &str) -> TunnelKey {
        let digest = Sha256::new()
            .chain_update(b"slipway tunnel key\0")
            .chain_update(secret.as_bytes())
            .finalize();
        TunnelKey(digest.iter().map(|b| format!("{b:02x}")).collect())
    }

    fn matches(&self, offered: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), offered.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

/// Why a tunnel could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    /// The connection or the handshake failed.
    #[error("tunnel to {0}: {1}")]
    Io(SocketAddr, io::Error),
    /// The remote agent refused.
    #[error("tunnel to {0} refused: {1}")]
    Refused(SocketAddr, String),
}

impl From<TunnelError> for io::Error {
    fn from(e: TunnelError) -> io::Error {
        match e {
            TunnelError::Io(_, ref inner) => io::Error::new(inner.kind(), e.to_string()),
            TunnelError::Refused(..) => {
                io::Error::new(io::ErrorKind::ConnectionRefused, e.to_string())
            }
        }
    }
}

async fn read_line<S: AsyncRead + Unpin>(stream: &mut S) -> io::Result<String> {
    let mut line = Vec::with_capacity(64);
    // Byte by byte: whatever follows the line belongs to the spliced connection.
    loop {
        let byte = stream.read_u8().await?;
        if byte == b'\n' {
            break;
        }
        if line.len() >= MAX_LINE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "handshake line too long",
            ));
        }
        line.push(byte);
    }
    String::from_utf8(line)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "handshake is not UTF-8"))
}

async fn bounded<T>(work: impl Future<Output = io::Result<T>>) -> io::Result<T> {
    tokio::time::timeout(HANDSHAKE, work)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "tunnel handshake timed out"))?
}

/// Opens a tunnel through the agent at `node` to `target` on its node.
///
/// # Errors
///
/// When the agent cannot be reached or refuses.
pub async fn open(
    node: SocketAddr,
    key: &TunnelKey,
    target: SocketAddrV4,
) -> Result<TcpStream, TunnelError> {
    let fail = |e| TunnelError::Io(node, e);
    let mut stream = bounded(TcpStream::connect(node)).await.map_err(fail)?;
    stream.set_nodelay(true).map_err(fail)?;
    let hello = format!("{MAGIC} {} {target}\n", key.0);
    bounded(stream.write_all(hello.as_bytes()))
        .await
        .map_err(fail)?;
    let answer = bounded(read_line(&mut stream)).await.map_err(fail)?;
    match answer.strip_prefix("ERR ") {
        None if answer == "OK" => Ok(stream),
        Some(reason) => Err(TunnelError::Refused(node, reason.to_owned())),
        None => Err(TunnelError::Refused(
            node,
            format!("unexpected answer {answer:?}"),
        )),
    }
}

/// The endpoint a tunnel client asked for, once its key checked out.
///
/// # Errors
///
/// When the line is malformed or the key is wrong; the client has been told why.
pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    key: &TunnelKey,
) -> io::Result<SocketAddrV4> {
    let line = bounded(read_line(stream)).await?;
    let mut words = line.split(' ');
    let parsed = match (words.next(), words.next(), words.next(), words.next()) {
        (Some(MAGIC), Some(offered), Some(target), None) => {
            if key.matches(offered) {
                target.parse::<SocketAddrV4>().map_err(|_| "bad target")
            } else {
                Err("unauthorized")
            }
        }
        _ => Err("bad handshake"),
    };
    match parsed {
        Ok(target) => Ok(target),
        Err(reason) => {
            let _ = bounded(stream.write_all(format!("ERR {reason}\n").as_bytes())).await;
            Err(io::Error::new(io::ErrorKind::PermissionDenied, reason))
        }
    }
}

/// Tells the client its tunnel is open (`Ok`) or why not.
///
/// # Errors
///
/// When the client is gone.
pub async fn answer<S: AsyncWrite + Unpin>(
    stream: &mut S,
    result: Result<(), String>,
) -> io::Result<()> {
    let line = match result {
        Ok(()) => "OK\n".to_owned(),
        Err(reason) => format!("ERR {}\n", reason.replace('\n', " ")),
    };
    bounded(stream.write_all(line.as_bytes())).await
}
