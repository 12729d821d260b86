//! Free loopback ports for test processes.

use std::net::{Ipv4Addr, TcpListener};

use crate::TestkitError;

/// A TCP port on 127.0.0.1 that was free a moment ago.
///
/// Another process may take it before the caller binds it; callers that start a server on
/// it should retry with a new port when the bind fails.
pub fn free_port() -> Result<u16, TestkitError> {
    Ok(free_ports::<1>()?[0])
}

/// `N` distinct free loopback ports: every listener stays bound until all are chosen, so the
/// kernel cannot hand out the same port twice.
pub(crate) fn free_ports<const N: usize>() -> Result<[u16; N], TestkitError> {
    let mut listeners = Vec::with_capacity(N);
    let mut ports = [0; N];
    for port in &mut ports {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(TestkitError::io("binding 127.0.0.1:0"))?;
        *port = listener
            .local_addr()
            .map_err(TestkitError::io("reading a bound port"))?
            .port();
        listeners.push(listener);
    }
    Ok(ports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_and_bindable() {
        let [a, b, c] = free_ports::<3>().unwrap();
        assert!(a != b && b != c && a != c);
        assert_ne!(free_port().unwrap(), 0);
        TcpListener::bind((Ipv4Addr::LOCALHOST, a)).unwrap();
    }
}
