//! The WebSocket tunnel kubectl 1.32 carries SPDY in by default (RFC 6455, server side).
//!
//! client-go's `TunnelingConnection` turns a WebSocket into a byte stream: every write is
//! one binary message (which gorilla may fragment), and reads run across message
//! boundaries, so SPDY frames and messages need not line up. [`tunnel`] does the same on
//! this end: a task moves the payload of the client's binary messages into one end of an
//! in-memory pipe and whatever the session writes into the pipe out as binary messages.
//! Pings are answered, a close is echoed, and a close with status 1000 is how either end
//! says it is done (client-go reads it as end of file). Text messages, unmasked client
//! frames and extension bits are protocol errors: the tunnel answers with a close frame
//! (1002 or 1003) and ends.

use std::time::Duration;

use base64::Engine;
use tokio::io::{
    AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadHalf, WriteHalf,
};
use tokio::sync::Mutex;

/// The GUID RFC 6455 appends to the client's key before hashing it.
const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Bytes read from the pipe and sent as one binary message at most.
const MESSAGE_CHUNK: usize = 32 * 1024;

/// How long the tunnel waits for the client's answer to its close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xa;

const CLOSE_NORMAL: u16 = 1000;
const CLOSE_PROTOCOL_ERROR: u16 = 1002;
const CLOSE_UNSUPPORTED_DATA: u16 = 1003;

/// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key`.
pub(crate) fn accept_key(key: &str) -> String {
    let digest = ring::digest::digest(
        &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        format!("{key}{ACCEPT_GUID}").as_bytes(),
    );
    base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
}

/// Starts the tunnel over `io` (the upgraded connection) and returns the byte stream the
/// SPDY session runs on. The tunnel's task ends with the connection or the returned end.
pub(crate) fn tunnel<S>(io: S) -> DuplexStream
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (session_end, tunnel_end) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        if let Err(err) = run(io, tunnel_end).await {
            tracing::debug!(error = %err, "SPDY WebSocket tunnel ended");
        }
    });
    session_end
}

#[derive(Debug, thiserror::Error)]
enum TunnelError {
    #[error("WebSocket I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("WebSocket protocol error: {0}")]
    Protocol(&'static str),
}

struct Writer<W> {
    io: WriteHalf<W>,
    close_sent: bool,
}

impl<W: AsyncWrite> Writer<W> {
    async fn frame(&mut self, opcode: u8, payload: &[u8]) -> std::io::Result<()> {
        if self.close_sent {
            return Ok(());
        }
        self.close_sent = opcode == OP_CLOSE;
        self.io
            .write_all(&frame_header(opcode, payload.len()))
            .await?;
        self.io.write_all(payload).await?;
        self.io.flush().await
    }

    async fn close(&mut self, code: u16) -> std::io::Result<()> {
        self.frame(OP_CLOSE, &code.to_be_bytes()).await
    }
}

async fn run<S>(io: S, pipe: DuplexStream) -> Result<(), TunnelError>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (ws_read, ws_write) = tokio::io::split(io);
    let (pipe_read, pipe_write) = tokio::io::split(pipe);
    let writer = Mutex::new(Writer {
        io: ws_write,
        close_sent: false,
    });
    let inbound = inbound(ws_read, pipe_write, &writer);
    let mut inbound = std::pin::pin!(inbound);
    tokio::select! {
        result = &mut inbound => result,
        result = outbound(pipe_read, &writer) => {
            result?;
            // This end said goodbye; give the client a moment to answer before dropping
            // the connection.
            let _ = tokio::time::timeout(CLOSE_GRACE, inbound).await;
            Ok(())
        }
    }
}

/// The session's bytes out as binary messages; end of the pipe is a normal close.
async fn outbound<W: AsyncWrite>(
    mut pipe: ReadHalf<DuplexStream>,
    writer: &Mutex<Writer<W>>,
) -> Result<(), TunnelError> {
    let mut buf = vec![0; MESSAGE_CHUNK];
    loop {
        let n = pipe.read(&mut buf).await?;
        let mut writer = writer.lock().await;
        if n == 0 {
            writer.close(CLOSE_NORMAL).await?;
            return Ok(());
        }
        writer.frame(OP_BINARY, &buf[..n]).await?;
    }
}

/// The client's messages into the pipe.
async fn inbound<R: AsyncRead, W: AsyncWrite>(
    mut ws: ReadHalf<R>,
    mut pipe: WriteHalf<DuplexStream>,
    writer: &Mutex<Writer<W>>,
) -> Result<(), TunnelError> {
    let mut in_message = false;
    let mut buf = vec![0; MESSAGE_CHUNK];
    loop {
        let header = match read_header(&mut ws).await {
            Ok(header) => header,
            Err(TunnelError::Protocol(why)) => {
                let _ = writer.lock().await.close(CLOSE_PROTOCOL_ERROR).await;
                return Err(TunnelError::Protocol(why));
            }
            Err(err) => return Err(err),
        };
        let unexpected = match header.opcode {
            OP_BINARY if in_message => Some("a new message inside a fragmented one"),
            OP_CONTINUATION if !in_message => Some("a continuation outside a message"),
            OP_TEXT => {
                let _ = writer.lock().await.close(CLOSE_UNSUPPORTED_DATA).await;
                return Err(TunnelError::Protocol("a text message in a binary tunnel"));
            }
            _ => None,
        };
        if let Some(why) = unexpected {
            let _ = writer.lock().await.close(CLOSE_PROTOCOL_ERROR).await;
            return Err(TunnelError::Protocol(why));
        }
        match header.opcode {
            OP_BINARY | OP_CONTINUATION => {
                in_message = !header.fin;
                let mut offset = 0;
                let mut left = header.len;
                while left > 0 {
                    let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                    ws.read_exact(&mut buf[..n]).await?;
                    unmask(&mut buf[..n], header.mask, offset);
                    offset += n;
                    left -= n as u64;
                    pipe.write_all(&buf[..n]).await?;
                }
            }
            OP_PING | OP_PONG | OP_CLOSE => {
                let len = usize::try_from(header.len).unwrap_or(usize::MAX);
                let payload = &mut buf[..len];
                ws.read_exact(payload).await?;
                unmask(payload, header.mask, 0);
                match header.opcode {
                    OP_PING => writer.lock().await.frame(OP_PONG, payload).await?,
                    OP_CLOSE => {
                        // Echo the status code, then let the session see end of file.
                        let code = payload.get(..2).unwrap_or_default().to_vec();
                        writer.lock().await.frame(OP_CLOSE, &code).await?;
                        pipe.shutdown().await?;
                        return Ok(());
                    }
                    _ => {}
                }
            }
            _ => {
                let _ = writer.lock().await.close(CLOSE_PROTOCOL_ERROR).await;
                return Err(TunnelError::Protocol("an unknown opcode"));
            }
        }
    }
}

struct Header {
    fin: bool,
    opcode: u8,
    mask: [u8; 4],
    len: u64,
}

async fn read_header<R: AsyncRead>(ws: &mut ReadHalf<R>) -> Result<Header, TunnelError> {
    let mut start = [0; 2];
    ws.read_exact(&mut start).await?;
    let fin = start[0] & 0x80 != 0;
    let opcode = start[0] & 0x0f;
    if start[0] & 0x70 != 0 {
        return Err(TunnelError::Protocol(
            "reserved bits set without an extension",
        ));
    }
    if start[1] & 0x80 == 0 {
        return Err(TunnelError::Protocol("an unmasked client frame"));
    }
    let len = match start[1] & 0x7f {
        126 => u64::from(ws.read_u16().await?),
        127 => ws.read_u64().await?,
        len => u64::from(len),
    };
    if opcode & 0x08 != 0 && (len > 125 || !fin) {
        return Err(TunnelError::Protocol(
            "a control frame that is fragmented or too long",
        ));
    }
    if len >> 63 != 0 {
        return Err(TunnelError::Protocol(
            "a payload length with its top bit set",
        ));
    }
    let mut mask = [0; 4];
    ws.read_exact(&mut mask).await?;
    Ok(Header {
        fin,
        opcode,
        mask,
        len,
    })
}

fn unmask(payload: &mut [u8], mask: [u8; 4], offset: usize) {
    for (i, byte) in payload.iter_mut().enumerate() {
        *byte ^= mask[(offset + i) % 4];
    }
}

/// A final, unmasked server frame's header.
fn frame_header(opcode: u8, len: usize) -> Vec<u8> {
    let mut header = vec![0x80 | opcode];
    match len {
        0..=125 => header.push(len as u8),
        126..=0xffff => {
            header.push(126);
            header.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            header.push(127);
            header.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    header
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    use super::*;

    #[test]
    fn the_accept_key_is_rfc_6455s_example() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        let mut frame = frame_header(opcode, payload.len());
        frame[0] = if fin { 0x80 | opcode } else { opcode };
        frame[1] |= 0x80;
        frame.extend_from_slice(&mask);
        frame.extend(
            payload
                .iter()
                .enumerate()
                .map(|(i, byte)| byte ^ mask[i % 4]),
        );
        frame
    }

    async fn read_server_frame(client: &mut DuplexStream) -> (u8, Vec<u8>) {
        let mut start = [0; 2];
        client.read_exact(&mut start).await.unwrap();
        assert_eq!(start[1] & 0x80, 0, "server frames are not masked");
        let len = match start[1] & 0x7f {
            126 => usize::from(client.read_u16().await.unwrap()),
            127 => usize::try_from(client.read_u64().await.unwrap()).unwrap(),
            len => usize::from(len),
        };
        let mut payload = vec![0; len];
        client.read_exact(&mut payload).await.unwrap();
        (start[0], payload)
    }

    #[tokio::test]
    async fn fragmented_messages_become_one_byte_stream_and_writes_become_binary_messages() {
        let (mut client, server) = tokio::io::duplex(1 << 20);
        let mut session = tunnel(server);
        client
            .write_all(&client_frame(false, OP_BINARY, b"hel"))
            .await
            .unwrap();
        client
            .write_all(&client_frame(true, OP_PING, b"p"))
            .await
            .unwrap();
        client
            .write_all(&client_frame(true, OP_CONTINUATION, b"lo"))
            .await
            .unwrap();
        client
            .write_all(&client_frame(true, OP_BINARY, &[7; 300]))
            .await
            .unwrap();
        let mut got = vec![0; 305];
        session.read_exact(&mut got).await.unwrap();
        assert_eq!(&got[..5], b"hello");
        assert_eq!(&got[5..], &[7; 300]);
        assert_eq!(
            read_server_frame(&mut client).await,
            (0x80 | OP_PONG, b"p".to_vec())
        );

        session.write_all(&[9; 200]).await.unwrap();
        assert_eq!(
            read_server_frame(&mut client).await,
            (0x80 | OP_BINARY, vec![9; 200])
        );

        drop(session);
        let close = read_server_frame(&mut client).await;
        assert_eq!(
            close,
            (0x80 | OP_CLOSE, CLOSE_NORMAL.to_be_bytes().to_vec())
        );
    }

    #[tokio::test]
    async fn a_client_close_is_echoed_and_ends_the_stream() {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let mut session = tunnel(server);
        client
            .write_all(&client_frame(true, OP_CLOSE, &CLOSE_NORMAL.to_be_bytes()))
            .await
            .unwrap();
        let mut rest = Vec::new();
        session.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
        let echo = read_server_frame(&mut client).await;
        assert_eq!(echo, (0x80 | OP_CLOSE, CLOSE_NORMAL.to_be_bytes().to_vec()));
    }

    #[tokio::test]
    async fn protocol_errors_close_the_tunnel() {
        let unmasked = {
            let mut frame = frame_header(OP_BINARY, 1);
            frame.push(1);
            frame
        };
        let cases = [
            (client_frame(true, OP_TEXT, b"hi"), CLOSE_UNSUPPORTED_DATA),
            (unmasked, CLOSE_PROTOCOL_ERROR),
            (
                client_frame(true, OP_CONTINUATION, b"x"),
                CLOSE_PROTOCOL_ERROR,
            ),
            (client_frame(false, OP_PING, b"x"), CLOSE_PROTOCOL_ERROR),
            (client_frame(true, 0x3, b"x"), CLOSE_PROTOCOL_ERROR),
            (
                {
                    let mut frame = client_frame(true, OP_BINARY, b"x");
                    frame[0] |= 0x40;
                    frame
                },
                CLOSE_PROTOCOL_ERROR,
            ),
        ];
        for (bytes, code) in cases {
            let (mut client, server) = tokio::io::duplex(1 << 16);
            let mut session = tunnel(server);
            client.write_all(&bytes).await.unwrap();
            let close = read_server_frame(&mut client).await;
            assert_eq!(close, (0x80 | OP_CLOSE, code.to_be_bytes().to_vec()));
            let mut rest = Vec::new();
            session.read_to_end(&mut rest).await.unwrap();
            assert!(rest.is_empty());
        }
    }
}
