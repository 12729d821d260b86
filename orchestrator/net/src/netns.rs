//! Sockets made inside a pod's network namespace. A socket belongs to the namespace it was
//! created in for its whole life, and `setns` changes only the calling thread, so each
//! namespace gets one thread that lives in it and does nothing but create sockets; binding,
//! connecting and all IO then happen on the agent's runtime like any other socket. The
//! thread keeps a few sockets made ahead, so a new connection does not wait for it to wake.

use std::io;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::sys::socket::{AddressFamily, SockFlag, SockType, setsockopt, socket, sockopt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{Mutex, mpsc, oneshot};

/// How many sockets the namespace's thread makes ahead of use: enough for a client asking
/// again and again, few enough that a node with a hundred pods holds few idle descriptors.
const STOCK: usize = 2;

/// A handle on one network namespace. Cheap to clone; the namespace's thread ends when the
/// last handle is dropped.
#[derive(Clone, Debug)]
pub struct Netns {
    path: PathBuf,
    stock: Arc<Mutex<mpsc::Receiver<io::Result<OwnedFd>>>>,
}

impl Netns {
    /// Enters the namespace at `path` (e.g. `/run/netns/slipway-<uid>`) on a new thread.
    ///
    /// # Errors
    ///
    /// When the namespace cannot be opened or entered, or the thread cannot start.
    pub async fn open(path: &Path) -> io::Result<Netns> {
        let (made, stock) = mpsc::channel::<io::Result<OwnedFd>>(STOCK);
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
                loop {
                    let socket = socket(
                        AddressFamily::Inet,
                        SockType::Stream,
                        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
                        None,
                    )
                    .map_err(io::Error::from);
                    // Waits while the stock is full; fails once every handle is gone.
                    if made.blocking_send(socket).is_err() {
                        return;
                    }
                }
            })?;
        entered
            .await
            .map_err(|_| io::Error::other("the namespace thread died"))??;
        Ok(Netns {
            path: path.to_owned(),
            stock: Arc::new(Mutex::new(stock)),
        })
    }

    /// Where the namespace is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn socket(&self) -> io::Result<TcpSocket> {
        let fd = self
            .stock
            .lock()
            .await
            .recv()
            .await
            .ok_or_else(|| io::Error::other("the namespace thread has ended"))??;
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
