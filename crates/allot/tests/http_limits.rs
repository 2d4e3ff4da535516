//! The HTTP server cannot be held open: 200 slow clients (slowloris) are
//! closed once the header-read timeout passes while `/healthz` keeps
//! answering; a body that never arrives gets a 408 in the API's JSON shape;
//! past the connection cap a new connection is answered 503 and closed.

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

mod common;

fn addr(api: &str) -> String {
    api.trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string()
}

/// Reads until the peer closes (or `limit` passes): what it sent.
fn read_to_close(s: &mut TcpStream, limit: Duration) -> (String, bool) {
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return (String::from_utf8_lossy(&got).into(), true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return (String::from_utf8_lossy(&got).into(), true),
        }
    }
    (String::from_utf8_lossy(&got).into(), false)
}

#[test]
fn slow_clients_are_closed_and_the_server_keeps_answering() {
    let dir = tempfile::tempdir().unwrap();
    let run = common::start_with(
        dir.path(),
        &[],
        &[
            ("ALLOT__API__LIMITS__HEADER_READ_TIMEOUT_SECS", "2"),
            ("ALLOT__API__LIMITS__REQUEST_TIMEOUT_SECS", "2"),
            ("ALLOT__API__LIMITS__IDLE_TIMEOUT_SECS", "3"),
            ("ALLOT__API__LIMITS__MAX_CONNECTIONS", "300"),
        ],
    );
    let at = addr(&run.api);

    // 200 clients that start a request head and never finish it.
    let started = Instant::now();
    let mut slow: Vec<TcpStream> = (0..200)
        .map(|_| {
            let mut s = TcpStream::connect(&at).unwrap();
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                .unwrap();
            s
        })
        .collect();
    // Meanwhile the server answers.
    let health = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
        .get(format!("{}/healthz", run.api))
        .send()
        .unwrap();
    assert!(health.status().is_success());
    let mut closed = 0;
    for s in &mut slow {
        // A byte now and then does not keep the head alive.
        let _ = s.write_all(b"a");
        let (_, gone) = read_to_close(s, Duration::from_secs(15));
        closed += usize::from(gone);
    }
    let took = started.elapsed();
    println!(
        "slowloris: {closed} of 200 slow connections closed in {took:?} (header-read timeout 2 s)"
    );
    assert_eq!(closed, 200, "slow connections still open after {took:?}");

    // A body announced and never sent: 408, as JSON.
    let mut s = TcpStream::connect(&at).unwrap();
    s.write_all(
        b"POST /api/simulate HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"rec",
    )
    .unwrap();
    let (answer, _) = read_to_close(&mut s, Duration::from_secs(15));
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.contains(r#""status":"error""#) && answer.contains("api.request_timeout_secs"),
        "{answer}"
    );

    // A kept-alive connection that goes quiet after its answer is closed too.
    let mut s = TcpStream::connect(&at).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let (answer, gone) = read_to_close(&mut s, Duration::from_secs(15));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(gone, "an idle kept-alive connection stayed open");
}

#[test]
fn past_the_connection_cap_new_connections_get_a_503() {
    let dir = tempfile::tempdir().unwrap();
    let run = common::start_with(
        dir.path(),
        &[],
        &[("ALLOT__API__LIMITS__MAX_CONNECTIONS", "20")],
    );
    let at = addr(&run.api);
    let held: Vec<TcpStream> = (0..20).map(|_| TcpStream::connect(&at).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut extra = TcpStream::connect(&at).unwrap();
    let (answer, gone) = read_to_close(&mut extra, Duration::from_secs(5));
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("api.max_connections = 20"), "{answer}");
    assert!(gone);
    drop(held);
    // Freed: served again.
    common::wait_for("a connection served after the others closed", 15, || {
        reqwest::blocking::get(format!("{}/healthz", run.api))
            .ok()
            .filter(|r| r.status().is_success())
    });
}
