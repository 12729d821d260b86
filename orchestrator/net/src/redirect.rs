//! How a pod's connections to ClusterIPs reach the proxy without the proxy taking any of the
//! pod's ports: a NAT rule in the pod's namespace sends every TCP connection to the Service
//! range to one proxy port on the pod's own loopback, and the proxy reads where each was
//! headed (`SO_ORIGINAL_DST`). A listener on ClusterIP:port inside the pod would make the
//! pod's own server on `0.0.0.0:port` fail to bind, since Linux lets no socket listen on a
//! port a wildcard listener holds, or the other way round.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};

use nix::sys::socket::{getsockopt, sockopt};
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;

/// The Service range (the API server's ClusterIP allocator gives out addresses from it).
pub const SERVICE_NETWORK: &str = "127.100.0.0/16";
/// The port the proxy listens on in every pod, on 127.0.0.1; pods cannot use it (as Istio
/// reserves its own in a mesh).
pub const PROXY_PORT: u16 = 15001;

fn ruleset() -> String {
    // `add` then `delete` makes the table exist and then go, so the definition after it
    // starts from nothing however often this runs.
    format!(
        "add table ip slipway\n\
         delete table ip slipway\n\
         table ip slipway {{\n\
           chain services {{\n\
             type nat hook output priority -100; policy accept;\n\
             ip daddr {SERVICE_NETWORK} meta l4proto tcp dnat to 127.0.0.1:{PROXY_PORT}\n\
           }}\n\
         }}\n"
    )
}

/// Sends the pod's connections to the Service range to the proxy port; idempotent.
///
/// # Errors
///
/// When `nft` is missing or refuses the rules.
pub async fn install(netns_name: &str) -> io::Result<()> {
    let mut child = tokio::process::Command::new("ip")
        .args(["netns", "exec", netns_name, "nft", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(ruleset().as_bytes()).await?;
    }
    let output = child.wait_with_output().await?;
    if output.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "nft in {netns_name}: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

/// Where a redirected connection was headed.
///
/// # Errors
///
/// When the socket has no NAT record (it did not come through the rule).
pub fn original_destination(stream: &TcpStream) -> io::Result<SocketAddrV4> {
    let addr = getsockopt(stream, sockopt::OriginalDst).map_err(io::Error::from)?;
    Ok(SocketAddrV4::new(
        Ipv4Addr::from(u32::from_be(addr.sin_addr.s_addr)),
        u16::from_be(addr.sin_port),
    ))
}
