//! Paging loops stop with a clear error when a server answers a cursor that
//! was already followed, instead of reading the same pages forever. The
//! server here is a few lines of HTTP/1.1 on 127.0.0.1 that always answers
//! the same next cursor.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use allot_crm::{
    CrmError, HubSpotAuth, HubSpotClient, HubSpotConfig, SalesforceAuth, SalesforceClient,
    SalesforceConfig,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Answers every request with `answer(path)` as JSON; counts requests.
async fn serve(answer: fn(&str, &str) -> String) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let host = base.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let host = host.clone();
            tokio::spawn(async move { answer_one(stream, &host, answer).await });
        }
    });
    (base, hits)
}

async fn answer_one(mut stream: TcpStream, base: &str, answer: fn(&str, &str) -> String) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    // Headers, then as much body as Content-Length says.
    let (head_end, length) = loop {
        let n = stream.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            break (end + 4, length);
        }
    };
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
    let body = answer(&path, base);
    let reply = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(reply.as_bytes()).await;
    let _ = stream.shutdown().await;
}

fn looping_owners(_path: &str, _base: &str) -> String {
    r#"{"results":[{"id":"910901","email":"maya@acme.example","userId":4512001,"archived":false}],
        "paging":{"next":{"after":"100","link":"http://x/crm/v3/owners?after=100"}}}"#
        .to_string()
}

fn looping_users(path: &str, base: &str) -> String {
    if path.starts_with("/services/oauth2/token") {
        return format!(r#"{{"access_token":"t","instance_url":"{base}","token_type":"Bearer"}}"#);
    }
    r#"{"totalSize":4000,"done":false,"nextRecordsUrl":"/services/data/v62.0/query/01gD0000002HU6KIAW-2000",
        "records":[{"attributes":{"type":"User"},"Id":"0055f000001AAAAAA4","IsActive":true}]}"#
        .to_string()
}

#[tokio::test]
async fn hubspot_owners_stop_on_a_repeated_cursor() {
    let (base, hits) = serve(looping_owners).await;
    let mut config = HubSpotConfig::new(
        &base,
        HubSpotAuth::PrivateApp {
            token: "pat-test".into(),
        },
    );
    config.timeout = Duration::from_secs(5);
    let client = HubSpotClient::new(config).unwrap();
    let err = tokio::time::timeout(Duration::from_secs(10), client.owners(false))
        .await
        .expect("the loop ends")
        .unwrap_err();
    let CrmError::Decode {
        endpoint, message, ..
    } = &err
    else {
        panic!("not a decode error: {err}");
    };
    assert_eq!(endpoint, "GET /crm/v3/owners");
    assert!(
        message.contains("\"100\"") && message.contains("already followed"),
        "{message}"
    );
    // The first page, then the page of cursor "100", whose answer repeats it.
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    assert!(!err.retryable());
}

#[tokio::test]
async fn salesforce_users_stop_on_a_repeated_next_records_url() {
    let (base, hits) = serve(looping_users).await;
    let mut config = SalesforceConfig::new(
        &base,
        SalesforceAuth::ClientCredentials {
            client_id: "id".into(),
            client_secret: "secret".into(),
        },
    );
    config.timeout = Duration::from_secs(5);
    let client = SalesforceClient::new(config).unwrap();
    let err = tokio::time::timeout(Duration::from_secs(10), client.users())
        .await
        .expect("the loop ends")
        .unwrap_err();
    let CrmError::Decode {
        endpoint, message, ..
    } = &err
    else {
        panic!("not a decode error: {err}");
    };
    assert!(
        endpoint.contains("/query/01gD0000002HU6KIAW-2000"),
        "{endpoint}"
    );
    assert!(
        message.contains("nextRecordsUrl") && message.contains("already followed"),
        "{message}"
    );
    // Token, first page, the next page that names itself again.
    assert_eq!(hits.load(Ordering::SeqCst), 3);
}
