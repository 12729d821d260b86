//! The demo app `slipway up` deploys: one static binary, two roles. `api` answers JSON;
//! `web` serves a page that calls the API by its Service name. Only `std`, so the binary
//! links statically and its image needs no other file.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

static REQUESTS: AtomicU64 = AtomicU64::new(0);

fn main() {
    let role = std::env::args().nth(1).unwrap_or_default();
    if role != "web" && role != "api" {
        eprintln!("usage: demo-app web|api (PORT, GREETING, API_URL from the environment)");
        std::process::exit(2);
    }
    let port = env("PORT", "8080");
    let listener = match TcpListener::bind(("0.0.0.0", port.parse().unwrap_or(8080))) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("demo-app {role}: cannot listen on port {port}: {e}");
            std::process::exit(1);
        }
    };
    println!("demo-app {role} {} listening on port {port}", version());
    for stream in listener.incoming().flatten() {
        let role = role.clone();
        std::thread::spawn(move || serve(&role, stream));
    }
}

fn env(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// The commit a preview runs, or `main` for the squad's own deployment.
fn version() -> String {
    env("SLIPWAY_SHA", "main")
}

fn pod() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

fn serve(role: &str, stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(&stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    loop {
        let mut header = String::new();
        match reader.read_line(&mut header) {
            Ok(0) | Err(_) => break,
            Ok(_) if header.trim().is_empty() => break,
            Ok(_) => {}
        }
    }
    let path = request_line.split(' ').nth(1).unwrap_or("/").to_owned();
    let count = REQUESTS.fetch_add(1, Ordering::Relaxed) + 1;
    let (status, content_type, body) = match (role, path.as_str()) {
        (_, "/healthz") => ("200 OK", "text/plain", "ok\n".to_owned()),
        ("api", "/") => ("200 OK", "application/json", api_answer(count)),
        ("web", "/") => ("200 OK", "text/html; charset=utf-8", page()),
        _ => ("404 Not Found", "text/plain", "not found\n".to_owned()),
    };
    // Probes come every second; only what people ask for is worth a log line.
    if path != "/healthz" {
        println!("{role} {path} {}", &status[..3]);
    }
    let mut stream = &stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

fn api_answer(count: u64) -> String {
    format!(
        "{{\"service\":\"demo-api\",\"greeting\":\"{}\",\"version\":\"{}\",\"pod\":\"{}\",\"requests\":{count}}}",
        escape(&env("GREETING", "hello")),
        escape(&version()),
        escape(&pod())
    )
}

/// The page, with the API's answer (or why there is none) in it.
fn page() -> String {
    let api = env("API_URL", "http://demo-api");
    let answer = match call(&api) {
        Ok(body) => format!("<pre id=\"api\">{}</pre>", html(&body)),
        Err(e) => format!("<p id=\"api-error\">cannot reach {}: {}</p>", html(&api), html(&e)),
    };
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>slipway demo shop</title></head>\n\
         <body><h1>slipway demo shop</h1>\n<p>web <span id=\"version\">{}</span> on pod {}</p>\n\
         <h2>The API (<code>{}</code>) says</h2>\n{answer}\n</body></html>\n",
        html(&version()),
        html(&pod()),
        html(&api)
    )
}

/// GET `url` (`http://HOST[:PORT]`): the body of a 200, else an error.
fn call(url: &str) -> Result<String, String> {
    let authority = url
        .strip_prefix("http://")
        .ok_or("API_URL must start with http://")?
        .trim_end_matches('/');
    let address = if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let mut stream = TcpStream::connect(address.as_str()).map_err(|e| e.to_string())?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    write!(
        stream,
        "GET / HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .map_err(|e| e.to_string())?;
    let (head, body) = answer.split_once("\r\n\r\n").ok_or("no HTTP answer")?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(head.lines().next().unwrap_or_default().to_owned());
    }
    Ok(body.to_owned())
}

fn escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

fn html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
