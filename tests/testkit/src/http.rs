//! One HTTP/1.1 exchange over a plain TCP connection, with the `Host` a test chooses: what
//! tests need to reach a gateway by virtual host, or a server before any client is set up.

use std::io::{Read as _, Write as _};
use std::time::Duration;

/// Sends `method path` to `address` (`ADDR:PORT`) for `host`, with `headers` and `body`;
/// answers the status code and the body, or code 0 when the connection failed.
pub fn exchange(
    address: &str,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let Ok(mut stream) = std::net::TcpStream::connect(address) else {
        return (0, String::new());
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    let mut answer = String::new();
    if stream.write_all(request.as_bytes()).is_err() || stream.read_to_string(&mut answer).is_err()
    {
        return (0, String::new());
    }
    let code = answer
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (code, body)
}

/// A GET of `/` from `address` for `host`: the status code and body (code 0: no connection).
pub fn get(address: &str, host: &str) -> (u16, String) {
    exchange(address, "GET", host, "/", &[], "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_the_code_and_body_and_zero_when_nobody_listens() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = [0u8; 1024];
            let read = stream.read(&mut request).unwrap();
            let request = String::from_utf8_lossy(&request[..read]).into_owned();
            stream
                .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\ngone")
                .unwrap();
            request
        });
        assert_eq!(get(&address, "shop.localhost"), (404, "gone".to_owned()));
        let request = server.join().unwrap();
        assert!(
            request.starts_with("GET / HTTP/1.1\r\nHost: shop.localhost\r\n"),
            "{request}"
        );
        assert_eq!(get(&address, "shop.localhost").0, 0);
    }
}
