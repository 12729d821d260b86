//! The bench's HTTP/1.1, written out by hand so that neither end costs more than a few
//! microseconds of the figures: a server with one tiny fixed answer that keeps connections
//! alive unless asked not to, and a client that sends a GET and reads the answer by its
//! `Content-Length`. Neither side sends a body.

use anyhow::Context;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// The host every request names; the gateway routes it to the Service.
pub(crate) const HOST: &str = "web.bench.localhost";

/// The longest head either side reads.
const MAX_HEAD: usize = 16 * 1024;

const ANSWER: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n";
const ANSWER_CLOSING: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n";

fn request(close: bool) -> Vec<u8> {
    let connection = if close { "Connection: close\r\n" } else { "" };
    format!("GET / HTTP/1.1\r\nHost: {HOST}\r\n{connection}\r\n").into_bytes()
}

/// Where the head in `buf` ends (after its blank line), once it is complete.
fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// The header lines of a head, as (name, value).
fn headers(head: &str) -> impl Iterator<Item = (&str, &str)> {
    head.split("\r\n")
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim(), value.trim()))
}

/// Reads into `buf` until it holds a whole head; `None` when the peer closed first.
async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> anyhow::Result<Option<usize>> {
    loop {
        if let Some(end) = head_end(buf) {
            return Ok(Some(end));
        }
        anyhow::ensure!(buf.len() < MAX_HEAD, "a head longer than {MAX_HEAD} bytes");
        buf.reserve(1024);
        if stream.read_buf(buf).await? == 0 {
            return Ok(None);
        }
    }
}

/// Serves the fixed answer on every connection `listener` accepts, until `stop`.
pub(crate) async fn serve(listener: TcpListener, stop: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = accepted else { continue };
        tokio::spawn(async move {
            if let Err(e) = answer(stream).await {
                eprintln!("the bench's server dropped a connection: {e:#}");
            }
        });
    }
}

/// Answers each request on one connection, until the client closes or asks to.
async fn answer(mut stream: TcpStream) -> anyhow::Result<()> {
    stream.set_nodelay(true)?;
    let mut buf = Vec::with_capacity(1024);
    while let Some(end) = read_head(&mut stream, &mut buf).await? {
        let head = std::str::from_utf8(&buf[..end]).context("a request head that is not UTF-8")?;
        let mut close = head.lines().next().is_some_and(|l| l.ends_with("HTTP/1.0"));
        for (name, value) in headers(head) {
            if name.eq_ignore_ascii_case("connection") {
                close |= value
                    .split(',')
                    .any(|token| token.trim().eq_ignore_ascii_case("close"));
            }
            let body = (name.eq_ignore_ascii_case("content-length") && value != "0")
                || name.eq_ignore_ascii_case("transfer-encoding");
            anyhow::ensure!(!body, "a request with a body, which the bench never sends");
        }
        stream
            .write_all(if close { ANSWER_CLOSING } else { ANSWER })
            .await?;
        if close {
            return Ok(());
        }
        buf.drain(..end);
    }
    Ok(())
}

/// An HTTP/1.1 client on one connection.
pub(crate) struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
    keep_alive: Vec<u8>,
}

impl Client {
    pub(crate) fn new(stream: TcpStream) -> Self {
        Client {
            stream,
            buf: Vec::with_capacity(1024),
            keep_alive: request(false),
        }
    }

    /// One GET, leaving the connection open for the next.
    pub(crate) async fn get(&mut self) -> anyhow::Result<()> {
        exchange(&mut self.stream, &mut self.buf, &self.keep_alive).await
    }

    /// One GET with `Connection: close`, the connection's last.
    pub(crate) async fn get_once(mut self) -> anyhow::Result<()> {
        exchange(&mut self.stream, &mut self.buf, &request(true)).await
    }
}

/// Sends `request` and reads the whole answer, which must be a 200.
async fn exchange(stream: &mut TcpStream, buf: &mut Vec<u8>, request: &[u8]) -> anyhow::Result<()> {
    stream.write_all(request).await?;
    let end = read_head(stream, buf)
        .await?
        .context("the connection closed before the answer")?;
    let head = std::str::from_utf8(&buf[..end]).context("an answer that is not UTF-8")?;
    let status = head.lines().next().unwrap_or_default();
    anyhow::ensure!(
        status.starts_with("HTTP/1.1 200 "),
        "answered {status:?}, not 200"
    );
    let length: usize = headers(head)
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .context("an answer without Content-Length")?
        .1
        .parse()
        .context("an answer with a bad Content-Length")?;
    while buf.len() < end + length {
        buf.reserve(end + length - buf.len());
        anyhow::ensure!(
            stream.read_buf(buf).await? > 0,
            "the connection closed in the middle of the answer"
        );
    }
    anyhow::ensure!(
        buf.len() == end + length,
        "bytes after the answer, which nothing asked for"
    );
    buf.clear();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_ends_after_its_blank_line() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nrest"), Some(27));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: a\r\n"), None);
    }

    #[tokio::test]
    async fn the_server_keeps_connections_alive_unless_asked_to_close() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        tokio::spawn(serve(listener, stop.clone()));

        let mut client = Client::new(TcpStream::connect(addr).await.unwrap());
        for _ in 0..3 {
            client.get().await.unwrap();
        }
        client.get_once().await.unwrap();

        let mut raw = TcpStream::connect(addr).await.unwrap();
        raw.write_all(&request(true)).await.unwrap();
        let mut answer = Vec::new();
        raw.read_to_end(&mut answer).await.unwrap();
        assert_eq!(answer, ANSWER_CLOSING);
        stop.cancel();
    }
}
