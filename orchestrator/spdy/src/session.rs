//! A SPDY/3.1 session, server side: the peer opens streams, this end answers them.
//!
//! # Behaviour, as Go's spdystream (kubectl's end) expects it
//!
//! * Streams are opened by the client only (odd ids, increasing); an id out of order is
//!   answered with `RST_STREAM` (protocol error) and otherwise ignored, as spdystream does.
//! * Nothing is sent before the client speaks: kubectl reads the 101 response through a
//!   buffered reader it then throws away, so an early frame would be lost.
//! * A stream must be answered with `SYN_REPLY` ([`IncomingStream::accept`]) before any
//!   data goes out on it (spdystream drops data on streams it has no reply for), or
//!   refused with `RST_STREAM`.
//! * PINGs from the client are echoed; SETTINGS, WINDOW_UPDATE, HEADERS and SYN_REPLY
//!   frames are ignored. spdystream does no flow control at all (it never sends
//!   WINDOW_UPDATE and ignores the peer's), so neither does this end: windows are not
//!   counted in either direction. Backpressure instead comes from the reading side: each
//!   stream buffers [`STREAM_BUFFER`] frames, and when a stream's buffer is full the
//!   session stops reading the connection until that stream is read. A caller must read
//!   every stream it accepts or drop its reader.
//! * GOAWAY from the client, the end of the connection or a malformed frame ends the
//!   session: every open stream reads end-of-stream and its writes fail.
//!
//! # Tasks
//!
//! [`Session::new`] spawns a reader task (decodes frames, routes them to streams) and a
//! writer task (the only owner of the outgoing header compressor, so header blocks are
//! compressed in wire order). Dropping the [`Session`] stops both; [`Session::close`]
//! first sends GOAWAY.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::compress::{HeaderCompressor, HeaderDecompressor};
use crate::frame::{
    self, Frame, FrameError, GOAWAY_OK, RST_CANCEL, RST_PROTOCOL_ERROR, RST_REFUSED_STREAM,
};

/// Frames of data each stream buffers before the session stops reading the connection.
pub const STREAM_BUFFER: usize = 16;

/// Open streams one session holds at most; more are refused.
const MAX_STREAMS: usize = 1024;

/// The largest data frame this end sends; larger writes are split so that streams take
/// turns on the connection.
const MAX_DATA_FRAME: usize = 32 * 1024;

/// How long [`Session::close`] waits for its GOAWAY to reach the peer.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// What went wrong with a session or one of its streams.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing the connection failed.
    #[error("SPDY connection: {0}")]
    Io(#[from] std::io::Error),
    /// The peer sent something that is not SPDY/3.
    #[error("malformed SPDY frame: {0}")]
    Frame(#[from] FrameError),
    /// The session has ended, so nothing more can be sent.
    #[error("the SPDY session has ended")]
    Closed,
    /// The stream was reset, by the peer or by this end.
    #[error("SPDY stream {0} was reset")]
    Reset(u32),
    /// This end already finished the stream.
    #[error("SPDY stream {0} is closed for writing")]
    StreamClosed(u32),
}

enum Command {
    Frame(Frame),
    /// Flush what is queued, shut the connection down and stop.
    Close,
}

/// A stream's routing entry, kept until both ends are done with it.
struct Entry {
    /// Where the peer's data goes; `None` once the peer finished or reset the stream.
    data: Option<mpsc::Sender<Bytes>>,
    reset: CancellationToken,
    /// This end has sent FIN or RST (or may not send at all).
    local_done: bool,
}

struct Shared {
    streams: Mutex<HashMap<u32, Entry>>,
    /// Why the reader stopped, for the next [`Session::accept`].
    ended: Mutex<Option<Error>>,
    /// The newest stream id the peer opened, for GOAWAY.
    last_stream: AtomicU32,
}

impl Shared {
    fn streams(&self) -> MutexGuard<'_, HashMap<u32, Entry>> {
        self.streams.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn remote_done(&self, id: u32) {
        let mut streams = self.streams();
        if let Some(entry) = streams.get_mut(&id) {
            entry.data = None;
            if entry.local_done {
                streams.remove(&id);
            }
        }
    }

    fn local_done(&self, id: u32) {
        let mut streams = self.streams();
        if let Some(entry) = streams.get_mut(&id) {
            entry.local_done = true;
            if entry.data.is_none() {
                streams.remove(&id);
            }
        }
    }

    fn reset(&self, id: u32) {
        if let Some(entry) = self.streams().remove(&id) {
            entry.reset.cancel();
        }
    }

    fn reset_all(&self) -> Vec<u32> {
        let mut streams = self.streams();
        let ids = streams.keys().copied().collect();
        for (_, entry) in streams.drain() {
            entry.reset.cancel();
        }
        ids
    }
}

/// The server end of a SPDY/3.1 session over one upgraded connection.
pub struct Session {
    incoming: mpsc::Receiver<IncomingStream>,
    outgoing: mpsc::Sender<Command>,
    shared: Arc<Shared>,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

impl Session {
    /// Starts serving `io`, the connection after the HTTP upgrade (see
    /// [`crate::Negotiated::wrap`]). Must be called inside a Tokio runtime.
    pub fn new<S>(io: S) -> Session
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (read_half, write_half) = tokio::io::split(io);
        let (outgoing, commands) = mpsc::channel(64);
        let (new_streams, incoming) = mpsc::channel(16);
        let shared = Arc::new(Shared {
            streams: Mutex::new(HashMap::new()),
            ended: Mutex::new(None),
            last_stream: AtomicU32::new(0),
        });
        let reader = tokio::spawn(read_loop(
            read_half,
            shared.clone(),
            outgoing.clone(),
            new_streams,
        ));
        let writer = tokio::spawn(async move {
            if let Err(err) = write_loop(write_half, commands).await {
                tracing::debug!(error = %err, "SPDY session stopped writing");
            }
        });
        Session {
            incoming,
            outgoing,
            shared,
            reader,
            writer,
        }
    }

    /// The next stream the peer opens; `None` once the peer has gone away or the connection
    /// ended cleanly, an error if it ended on bad input.
    ///
    /// Cancel-safe: a stream is never lost when the future is dropped.
    pub async fn accept(&mut self) -> Result<Option<IncomingStream>, Error> {
        match self.incoming.recv().await {
            Some(stream) => Ok(Some(stream)),
            None => match self
                .shared
                .ended
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take()
            {
                Some(err) => Err(err),
                None => Ok(None),
            },
        }
    }

    /// Ends the session as a Kubernetes server does: resets every open stream, sends
    /// GOAWAY, flushes and shuts the connection down (waiting at most a few seconds for a
    /// peer that does not read).
    pub async fn close(self) {
        for id in self.shared.reset_all() {
            let reset = Frame::RstStream {
                stream_id: id,
                status: RST_CANCEL,
            };
            if self.outgoing.send(Command::Frame(reset)).await.is_err() {
                return;
            }
        }
        let goaway = Frame::GoAway {
            last_good_stream_id: self.shared.last_stream.load(Ordering::Relaxed),
            status: GOAWAY_OK,
        };
        if self.outgoing.send(Command::Frame(goaway)).await.is_ok()
            && self.outgoing.send(Command::Close).await.is_ok()
        {
            let mut session = self;
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, &mut session.writer).await;
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.reader.abort();
        self.writer.abort();
        self.shared.reset_all();
    }
}

async fn read_loop<R>(
    mut io: R,
    shared: Arc<Shared>,
    outgoing: mpsc::Sender<Command>,
    new_streams: mpsc::Sender<IncomingStream>,
) where
    R: AsyncRead + Unpin,
{
    let result = read_frames(&mut io, &shared, &outgoing, &new_streams).await;
    if let Err(err) = result {
        tracing::debug!(error = %err, "SPDY session stopped reading");
        *shared.ended.lock().unwrap_or_else(PoisonError::into_inner) = Some(err);
    }
    shared.reset_all();
}

async fn read_frames<R>(
    io: &mut R,
    shared: &Arc<Shared>,
    outgoing: &mpsc::Sender<Command>,
    new_streams: &mpsc::Sender<IncomingStream>,
) -> Result<(), Error>
where
    R: AsyncRead + Unpin,
{
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut decompressor = HeaderDecompressor::new();
    let mut lowest_new_id = 1;
    loop {
        while let Some(frame) = frame::decode(&mut buf, &mut decompressor)? {
            match frame {
                Frame::SynStream {
                    stream_id,
                    fin,
                    unidirectional,
                    headers,
                    ..
                } => {
                    if stream_id % 2 == 0 || stream_id < lowest_new_id {
                        send_reset(outgoing, stream_id, RST_PROTOCOL_ERROR).await?;
                        continue;
                    }
                    lowest_new_id = stream_id.saturating_add(2);
                    shared.last_stream.store(stream_id, Ordering::Relaxed);
                    let Some(stream) =
                        open_stream(shared, outgoing, stream_id, fin, unidirectional, headers)
                    else {
                        send_reset(outgoing, stream_id, RST_REFUSED_STREAM).await?;
                        continue;
                    };
                    if new_streams.send(stream).await.is_err() {
                        // The session was dropped: nobody will accept anything again.
                        return Ok(());
                    }
                }
                Frame::Data {
                    stream_id,
                    fin,
                    data,
                } => {
                    let sender = shared
                        .streams()
                        .get(&stream_id)
                        .and_then(|entry| entry.data.clone());
                    if let Some(sender) = sender
                        && !data.is_empty()
                    {
                        // A dropped reader is not an error: the data has nowhere to go.
                        let _ = sender.send(data).await;
                    }
                    if fin {
                        shared.remote_done(stream_id);
                    }
                }
                Frame::RstStream { stream_id, .. } => shared.reset(stream_id),
                Frame::Ping { id } if id % 2 == 1 => {
                    outgoing
                        .send(Command::Frame(Frame::Ping { id }))
                        .await
                        .map_err(|_| Error::Closed)?;
                }
                Frame::GoAway { .. } => return Ok(()),
                Frame::Ping { .. }
                | Frame::SynReply { .. }
                | Frame::Headers { .. }
                | Frame::Settings { .. }
                | Frame::WindowUpdate { .. } => {}
            }
        }
        if io.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
    }
}

fn open_stream(
    shared: &Arc<Shared>,
    outgoing: &mpsc::Sender<Command>,
    id: u32,
    fin: bool,
    unidirectional: bool,
    headers: HeaderMap,
) -> Option<IncomingStream> {
    let mut streams = shared.streams();
    if streams.len() >= MAX_STREAMS {
        return None;
    }
    let (sender, data) = mpsc::channel(STREAM_BUFFER);
    let reset = CancellationToken::new();
    streams.insert(
        id,
        Entry {
            data: (!fin).then_some(sender),
            reset: reset.clone(),
            local_done: unidirectional,
        },
    );
    Some(IncomingStream {
        headers,
        reader: StreamReader { id, data },
        writer: StreamWriter {
            id,
            outgoing: outgoing.clone(),
            shared: shared.clone(),
            reset,
            done: unidirectional,
        },
    })
}

async fn send_reset(
    outgoing: &mpsc::Sender<Command>,
    stream_id: u32,
    status: u32,
) -> Result<(), Error> {
    outgoing
        .send(Command::Frame(Frame::RstStream { stream_id, status }))
        .await
        .map_err(|_| Error::Closed)
}

async fn write_loop<W>(mut io: W, mut commands: mpsc::Receiver<Command>) -> Result<(), Error>
where
    W: AsyncWrite + Unpin,
{
    let mut compressor = HeaderCompressor::new()?;
    let mut out = Vec::with_capacity(64 * 1024);
    while let Some(command) = commands.recv().await {
        let mut next = Some(command);
        let mut closing = false;
        // Whatever else is already queued goes out in the same write.
        while let Some(command) = next.take() {
            match command {
                Command::Frame(frame) => frame::encode(&frame, &mut compressor, &mut out)?,
                Command::Close => {
                    closing = true;
                    break;
                }
            }
            if out.len() < 64 * 1024 {
                next = commands.try_recv().ok();
            }
        }
        io.write_all(&out).await?;
        io.flush().await?;
        out.clear();
        if closing {
            break;
        }
    }
    io.shutdown().await?;
    Ok(())
}

/// A stream the peer opened, not yet answered.
pub struct IncomingStream {
    headers: HeaderMap,
    reader: StreamReader,
    writer: StreamWriter,
}

impl IncomingStream {
    /// The stream's id.
    pub fn id(&self) -> u32 {
        self.writer.id
    }

    /// The headers the peer opened the stream with (names are lowercase).
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// Answers the stream with an empty `SYN_REPLY`, as Kubernetes servers do.
    pub async fn accept(self) -> Result<Stream, Error> {
        let reply = Frame::SynReply {
            stream_id: self.writer.id,
            fin: false,
            headers: HeaderMap::new(),
        };
        self.writer
            .outgoing
            .send(Command::Frame(reply))
            .await
            .map_err(|_| Error::Closed)?;
        Ok(Stream {
            headers: self.headers,
            reader: self.reader,
            writer: self.writer,
        })
    }

    /// Refuses the stream with `RST_STREAM` (refused).
    pub async fn refuse(mut self) -> Result<(), Error> {
        self.writer.done = true;
        self.writer.shared.reset(self.writer.id);
        send_reset(&self.writer.outgoing, self.writer.id, RST_REFUSED_STREAM).await
    }
}

/// An accepted stream: the peer's data comes out of its reader, this end's goes into its
/// writer.
pub struct Stream {
    headers: HeaderMap,
    reader: StreamReader,
    writer: StreamWriter,
}

impl Stream {
    /// The stream's id.
    pub fn id(&self) -> u32 {
        self.writer.id
    }

    /// The headers the peer opened the stream with (names are lowercase).
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The peer's direction.
    pub fn reader(&mut self) -> &mut StreamReader {
        &mut self.reader
    }

    /// This end's direction.
    pub fn writer(&mut self) -> &mut StreamWriter {
        &mut self.writer
    }

    /// The two directions, to be driven apart.
    pub fn split(self) -> (StreamReader, StreamWriter) {
        (self.reader, self.writer)
    }
}

/// The peer's direction of a stream.
pub struct StreamReader {
    id: u32,
    data: mpsc::Receiver<Bytes>,
}

impl StreamReader {
    /// The stream's id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The next bytes the peer sent; `None` once it finished or reset the stream, or the
    /// session ended. Cancel-safe.
    pub async fn read(&mut self) -> Option<Bytes> {
        self.data.recv().await
    }
}

/// This end's direction of a stream. Dropped without [`StreamWriter::close`], it resets
/// the stream.
pub struct StreamWriter {
    id: u32,
    outgoing: mpsc::Sender<Command>,
    shared: Arc<Shared>,
    reset: CancellationToken,
    done: bool,
}

impl StreamWriter {
    /// The stream's id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Sends `data` in one or more data frames; waits while the connection's queue is full.
    pub async fn write(&mut self, mut data: Bytes) -> Result<(), Error> {
        while !data.is_empty() {
            let chunk = data.split_to(data.len().min(MAX_DATA_FRAME));
            self.send(Frame::Data {
                stream_id: self.id,
                fin: false,
                data: chunk,
            })
            .await?;
        }
        Ok(())
    }

    /// Finishes this direction (an empty data frame with FIN). The peer may go on sending.
    pub async fn close(&mut self) -> Result<(), Error> {
        self.send(Frame::Data {
            stream_id: self.id,
            fin: true,
            data: Bytes::new(),
        })
        .await?;
        self.done = true;
        self.shared.local_done(self.id);
        Ok(())
    }

    /// Ends both directions at once with `RST_STREAM` (cancel).
    pub async fn reset(&mut self) -> Result<(), Error> {
        if self.done && self.reset.is_cancelled() {
            return Ok(());
        }
        self.done = true;
        self.shared.reset(self.id);
        self.reset.cancel();
        send_reset(&self.outgoing, self.id, RST_CANCEL).await
    }

    /// Resolves once the stream is reset (by either end) or the session ends; writes fail
    /// from then on. Cancel-safe.
    pub async fn cancelled(&self) {
        self.reset.cancelled().await;
    }

    /// The token [`StreamWriter::cancelled`] waits on, to hold apart from the writer.
    pub(crate) fn reset_token(&self) -> CancellationToken {
        self.reset.clone()
    }

    async fn send(&mut self, frame: Frame) -> Result<(), Error> {
        if self.reset.is_cancelled() {
            return Err(Error::Reset(self.id));
        }
        if self.done {
            return Err(Error::StreamClosed(self.id));
        }
        self.outgoing
            .send(Command::Frame(frame))
            .await
            .map_err(|_| Error::Closed)
    }
}

impl Drop for StreamWriter {
    fn drop(&mut self) {
        if !self.done && !self.reset.is_cancelled() {
            self.shared.reset(self.id);
            let reset = Frame::RstStream {
                stream_id: self.id,
                status: RST_CANCEL,
            };
            // Best effort: a full queue means the peer is not reading anyway.
            let _ = self.outgoing.try_send(Command::Frame(reset));
        }
    }
}
