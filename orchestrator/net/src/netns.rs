//! Sockets made inside a pod's network namespace. A socket belongs to the namespace it was
//! created in for its whole life, and `setns` changes only the calling thread, so each
//! namespace gets one thread that lives in it and does nothing but create sockets; binding,
//! connecting and all IO then happen on the agent's runtime like any other socket.

use std::io;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;

use nix::sys::socket::{AddressFamily, SockFlag, SockType, setsockopt, socket, sockopt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::oneshot;

type Reply = oneshot::Sender<io::Result<OwnedFd>>;

/// A handle on one network namespace. Cheap to clone; the namespace's thread ends when the
/// last handle is dropped.
#[derive(Clone, Debug)]
pub struct Netns {
    path: PathBuf,
    requests: std_mpsc::Sender<Reply>,
}

impl Netns {
    /// Enters the namespace at `path` (e.g. `/run/netns/slipway-<uid>`) on a new thread.
    ///
    /// # Errors
    ///
    /// When the namespace cannot be opened or entered, or the thread cannot start.
    pub async fn open(path: &Path) -> io::Result<Netns> {
        let (requests, incoming) = std_mpsc::channel::<Reply>();
        let (ready, entered) = oneshot::channel::<io::Result<()>>();
        let target = path.to_owned();
        std::thread::Builder::new()
            .name("netns".into())
            .spawn(move || {
                let entered = std::fs::File::open(&target).and_then(|file| {
                    nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                        .map_err(io::Error::from)
                });
                let ok = entered.is_ok();
                // The opener may have given up; then nobody needs this thread.
                if ready.send(entered).is_err() || !ok {
                    return;
                }
                while let Ok(reply) = incoming.recv() {
                    let made = socket(
                        AddressFamily::Inet,
                        SockType::Stream,
                        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
                        None,
                    )
                    .map_err(io::Error::from);
                    // The asker may have been cancelled meanwhile; its socket just closes.
                    let _ = reply.send(made);
                }
            })?;
        entered
            .await
            .map_err(|_| io::Error::other("the namespace thread died"))??;
        Ok(Netns {
            path: path.to_owned(),
            requests,
        })
    }

    /// Where the namespace is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn socket(&self) -> io::Result<TcpSocket> {
        let (reply, made) = oneshot::channel();
        self.requests
            .send(reply)
            .map_err(|_| io::Error::other("the namespace thread has ended"))?;
        let fd = made
            .await
            .map_err(|_| io::Error::other("the namespace thread has ended"))??;
        Ok(TcpSocket::from_std_stream(std::net::TcpStream::from(fd)))
    }

    /// Listens on `addr` inside the namespace.
    ///
    /// # Errors
    ///
    /// When the socket cannot be made or bound.
    pub async fn listen(&self, addr: SocketAddr) -> io::Result<TcpListener> {
        let socket = self.socket().await?;
        setsockopt(&socket, sockopt::ReuseAddr, &true).map_err(io::Error::from)?;
        socket.bind(addr)?;
        socket.listen(1024)
    }

    /// Connects to `addr` from inside the namespace.
    ///
    /// # Errors
    ///
    /// When the socket cannot be made or the connection fails.
    pub async fn connect(&self, addr: SocketAddr) -> io::Result<TcpStream> {
        let stream = self.socket().await?.connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }
}
