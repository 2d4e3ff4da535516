//! The small HTTP layer both clients share: building the reqwest client,
//! sending one request, and reading the headers every CRM answer may carry.

use std::time::Duration;

use allot_core::Crm;
use reqwest::header::HeaderMap;

use crate::CrmError;

/// One HTTP answer, read whole.
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    /// `Retry-After` in seconds, when present.
    pub fn retry_after(&self) -> Option<Duration> {
        retry_after(&self.headers)
    }

    /// The body as lossy text, cut short for error messages.
    pub fn body_snippet(&self) -> String {
        snippet(&self.body)
    }
}

/// A reqwest client with the configured timeout on every request.
pub(crate) fn build(crm: Crm, timeout: Duration) -> Result<reqwest::Client, CrmError> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("allot-crm/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| CrmError::Config {
            crm,
            message: format!("cannot build the HTTP client: {e}"),
        })
}

/// Sends the request and reads the whole answer. `endpoint` names the call in
/// errors (`PATCH /services/data/v62.0/composite/sobjects`).
pub(crate) async fn execute(
    crm: Crm,
    endpoint: &str,
    request: reqwest::RequestBuilder,
) -> Result<Reply, CrmError> {
    let transport = |e: reqwest::Error| CrmError::Transport {
        crm,
        endpoint: endpoint.to_string(),
        timeout: e.is_timeout(),
        message: e.to_string(),
    };
    let response = request.send().await.map_err(transport)?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.bytes().await.map_err(transport)?.to_vec();
    tracing::debug!(%crm, endpoint, status, bytes = body.len(), "crm answered");
    Ok(Reply {
        status,
        headers,
        body,
    })
}

/// `Retry-After` in either form RFC 9110 allows: delta-seconds, or an
/// HTTP-date (a date already past asks for no wait).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    retry_after_at(headers, std::time::SystemTime::now())
}

/// [`retry_after`] as seen at `now`.
fn retry_after_at(headers: &HeaderMap, now: std::time::SystemTime) -> Option<Duration> {
    if let Some(secs) = header_u64(headers, "retry-after") {
        return Some(Duration::from_secs(secs));
    }
    let date = httpdate::parse_http_date(header_str(headers, "retry-after")?.trim()).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A header holding an unsigned integer.
pub(crate) fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    header_str(headers, name)?.trim().parse().ok()
}

/// A header as text, when present and visible ASCII.
pub(crate) fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name)?.to_str().ok()
}

/// At most 300 characters of a body, for error messages.
pub(crate) fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut s: String = text.chars().take(300).collect();
    if text.chars().count() > 300 {
        s.push('…');
    }
    s
}

/// Joins a base URL and an absolute path without doubling the slash.
pub(crate) fn join(base: &str, path: &str) -> String {
    format!("{}{}", base.trim_end_matches('/'), path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = httpdate::parse_http_date("Wed, 02 Dec 2026 10:00:00 GMT").unwrap();
        let at = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert("retry-after", v.parse().unwrap());
            retry_after_at(&h, now)
        };
        assert_eq!(at("7"), Some(Duration::from_secs(7)));
        assert_eq!(at(" 120 "), Some(Duration::from_secs(120)));
        assert_eq!(
            at("Wed, 02 Dec 2026 10:01:30 GMT"),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            at("Wed, 02 Dec 2026 09:00:00 GMT"),
            Some(Duration::ZERO),
            "past"
        );
        assert_eq!(at("soon"), None);
        assert_eq!(retry_after_at(&HeaderMap::new(), now), None);
    }
}
