//! A request the admin API refuses before reading its body still leaves the
//! client able to carry on: a small body is read first and the connection is
//! kept, or the answer says `Connection: close`. Driven from a raw socket that
//! writes the body 10 ms after the headers, as Python's `requests` does.

use std::time::Duration;

use authrelay_testkit::app::spawn_api;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// One HTTP/1.1 response read off a socket: status, headers (lower-case names), body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Reads one response (headers, then a `Content-Length` body) within 5 s.
async fn read_answer(socket: &mut TcpStream) -> Answer {
    let read = async {
        let mut bytes = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = socket.read(&mut buf).await.expect("the socket stays readable");
            assert!(n > 0, "the server hung up before answering: {}", String::from_utf8_lossy(&bytes));
            bytes.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let Some((head, body)) = text.split_once("\r\n\r\n") else { continue };
            let mut lines = head.lines();
            let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
            let headers: Vec<(String, String)> = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
                .collect();
            let length: usize =
                headers.iter().find(|(n, _)| n == "content-length").map_or(0, |(_, v)| v.parse().unwrap());
            if body.len() >= length {
                return Answer { status, headers, body: body[..length].to_owned() };
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read).await.expect("an answer within 5 s")
}

/// Writes a POST's headers, then its body 10 ms later (a write error is the
/// server having closed the connection; the test then reads what it said).
async fn post_in_two_writes(socket: &mut TcpStream, path: &str, extra_headers: &str, body: &[u8]) {
    let head = format!("POST {path} HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n{extra_headers}\r\n", body.len());
    socket.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await; // what the test is about: a body that comes late
    let _ = socket.write_all(body).await;
}

#[tokio::test]
async fn a_401_before_the_body_is_read_keeps_the_connection_usable() {
    let app = spawn_api().await;
    let mut socket = TcpStream::connect(app.addr).await.unwrap();
    let body = br#"{"name": "n", "type": "bearer", "config": {"token": "tok-0123456789"}}"#;

    post_in_two_writes(&mut socket, "/v1/workspaces/acme/auth-profiles", "Content-Type: application/json\r\n", body)
        .await;
    let refused = read_answer(&mut socket).await;

    assert_eq!(refused.status, 401, "{}", refused.body);
    assert_ne!(refused.header("connection"), Some("close"));
    // The same connection serves the next request.
    socket.write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n").await.unwrap();
    let next = read_answer(&mut socket).await;
    assert_eq!(next.status, 200, "{}", next.body);
}

#[tokio::test]
async fn refusals_that_leave_the_body_unread_say_connection_close() {
    let app = spawn_api().await;
    let auth = format!("Authorization: Bearer {}\r\n", app.token);
    let cases: [(&str, String, Vec<u8>); 3] = [
        // Not JSON: refused on its content type, before reading.
        ("415", format!("{auth}Content-Type: text/plain\r\n"), b"hello".to_vec()),
        // Over the 256 KiB limit: refused part way through.
        ("413", format!("{auth}Content-Type: application/json\r\n"), vec![b' '; 300 * 1024]),
        // A route that does not exist reads nothing.
        ("404", auth.clone(), b"{}".to_vec()),
    ];
    for (expected, headers, body) in cases {
        let mut socket = TcpStream::connect(app.addr).await.unwrap();
        let path = if expected == "404" { "/v1/nowhere" } else { "/v1/workspaces/acme/auth-profiles" };

        post_in_two_writes(&mut socket, path, &headers, &body).await;
        let answer = read_answer(&mut socket).await;

        assert_eq!(answer.status.to_string(), expected, "{}", answer.body);
        assert_eq!(answer.header("connection"), Some("close"), "{expected}: the client is told");
    }
}
