//! Bulk API 2.0 query jobs: a whole object's book in a few large CSV pages.
//!
//! `POST jobs/query` starts a job for one SOQL query; `GET jobs/query/{id}`
//! is polled until the job is `JobComplete` (or `Failed`/`Aborted`); then
//! `GET jobs/query/{id}/results?maxRecords=N&locator=L` answers the rows as
//! CSV, `Sforce-Locator` naming the next page (`null` after the last).
//! Results must be read at the API version the job was created with.

use allot_core::{Crm, ObjectKind};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::client::SalesforceClient;
use super::request;
use crate::http::{self, Reply};
use crate::{BookPage, CrmError};

/// Where a query job is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BulkState {
    /// Not finished yet: `UploadComplete`, `InProgress` (the state as named).
    Running(String),
    /// `JobComplete`: the results are ready, `numberRecordsProcessed` rows.
    Complete { records: u64 },
    /// `Failed` (the job's `errorMessage`) or `Aborted`.
    Failed(String),
}

/// `/services/data/v62.0/jobs/query`
pub fn jobs_path(version: &str) -> String {
    format!("/services/data/v{version}/jobs/query")
}

/// An RFC 3339 UTC instant (`2026-12-03T10:00:00Z`, `…:00.123Z`,
/// `…:00+00:00`) as a SOQL datetime literal: seconds, or milliseconds when
/// a fraction was given (finer digits are cut, which only widens a `>`
/// filter); `None` when `s` is not such an instant.
fn soql_instant(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = s.get(r)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    let shaped = b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && matches!(b[10], b'T' | b't')
        && b[13] == b':'
        && b[16] == b':';
    if !shaped {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        1..=12 => 31,
        _ => return None,
    };
    if day == 0 || day > days || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let rest = &s[19..];
    let (fraction, zone) = match rest.strip_prefix('.') {
        Some(f) => {
            let n = f.bytes().take_while(u8::is_ascii_digit).count();
            if n == 0 {
                return None;
            }
            (Some(&f[..n]), &f[n..])
        }
        None => (None, rest),
    };
    if !matches!(zone, "Z" | "z" | "+00:00" | "-00:00") {
        return None;
    }
    let base = &s[..19].replace('t', "T");
    Some(match fraction {
        Some(f) => format!("{base}.{:0<3.3}Z", f),
        None => format!("{base}Z"),
    })
}

/// Whether `name` can stand in a SOQL field list (`OwnerId`, `Owner.Email`,
/// `Custom__c`).
fn is_field_name(name: &str) -> bool {
    !name.is_empty()
        && name.split('.').all(|part| {
            part.starts_with(|c: char| c.is_ascii_alphabetic())
                && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

fn invalid(message: String) -> CrmError {
    CrmError::Config {
        crm: Crm::Salesforce,
        message,
    }
}

/// `SELECT Id,<fields> FROM <Type> [WHERE SystemModstamp > <since>]`, the
/// query of a bulk read of `object`, of the records modified after `since`
/// (an RFC 3339 UTC instant, written unquoted as SOQL wants) when given.
/// Refuses a `since` that is not such an instant and field names SOQL
/// would not read as fields.
pub fn bulk_soql(
    object: ObjectKind,
    fields: &[&str],
    since: Option<&str>,
) -> Result<String, CrmError> {
    let mut names: Vec<&str> = vec!["Id"];
    for f in fields.iter().copied().filter(|f| *f != "Id") {
        if !is_field_name(f) {
            return Err(invalid(format!(
                "bulk query field {f:?} is not a SOQL field name"
            )));
        }
        if !names.contains(&f) {
            names.push(f);
        }
    }
    let filter = match since {
        None => String::new(),
        Some(s) => {
            let instant = soql_instant(s).ok_or_else(|| {
                invalid(format!(
                    "bulk query since {s:?} is not an RFC 3339 UTC instant (2026-12-03T10:00:00Z)"
                ))
            })?;
            format!(" WHERE SystemModstamp > {instant}")
        }
    };
    Ok(format!(
        "SELECT {} FROM {}{filter}",
        names.join(","),
        request::sobject_type(object)
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JobInfo {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    number_records_processed: Option<u64>,
    #[serde(default)]
    error_message: Option<String>,
}

fn job_info(body: &[u8]) -> Result<JobInfo, String> {
    serde_json::from_slice(body)
        .map_err(|e| format!("expected a job info object: {e} in {}", http::snippet(body)))
}

/// The state a job info answer reports.
pub fn parse_job_state(job: &str, body: &[u8]) -> Result<BulkState, String> {
    let info = job_info(body)?;
    let state = info
        .state
        .ok_or_else(|| format!("job info without a state: {}", http::snippet(body)))?;
    Ok(match state.as_str() {
        "JobComplete" => BulkState::Complete {
            records: info
                .number_records_processed
                .ok_or("a JobComplete job info without numberRecordsProcessed")?,
        },
        "Failed" => BulkState::Failed(
            info.error_message
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| format!("bulk query job {job} failed without an errorMessage")),
        ),
        "Aborted" => BulkState::Failed(match info.error_message.filter(|m| !m.is_empty()) {
            Some(m) => format!("bulk query job {job} was aborted: {m}"),
            None => format!("bulk query job {job} was aborted"),
        }),
        _ => BulkState::Running(state),
    })
}

/// One results page: the CSV rows keyed by their `Id` column (empty cells
/// null, others strings) and the next locator from the headers.
/// `number_of_records` (`Sforce-NumberOfRecords`), when sent, must match
/// the rows read.
pub fn parse_results(
    body: &[u8],
    number_of_records: Option<u64>,
    locator: Option<&str>,
) -> Result<BookPage, String> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(body);
    let columns: Vec<String> = reader
        .headers()
        .map_err(|e| format!("CSV header row: {e}"))?
        .iter()
        .map(str::to_string)
        .collect();
    let mut records = Vec::new();
    if !columns.is_empty() {
        let id_at = columns
            .iter()
            .position(|c| c.eq_ignore_ascii_case("Id"))
            .ok_or_else(|| format!("CSV without an Id column (columns: {})", columns.join(",")))?;
        for (i, row) in reader.records().enumerate() {
            let n = i + 1;
            let row = row.map_err(|e| format!("CSV row {n}: {e}"))?;
            let id = row.get(id_at).unwrap_or_default();
            if id.is_empty() {
                return Err(format!("CSV row {n} has an empty Id"));
            }
            let fields: Map<String, Value> = columns
                .iter()
                .zip(row.iter())
                .map(|(c, v)| {
                    let v = match v {
                        "" => Value::Null,
                        v => Value::String(v.to_string()),
                    };
                    (c.clone(), v)
                })
                .collect();
            records.push((id.to_string(), fields));
        }
    }
    if let Some(n) = number_of_records {
        if n != records.len() as u64 {
            return Err(format!(
                "Sforce-NumberOfRecords says {n} rows, the CSV holds {}",
                records.len()
            ));
        }
    }
    let next = locator
        .map(str::trim)
        .filter(|l| !l.is_empty() && *l != "null")
        .map(str::to_string);
    Ok(BookPage { records, next })
}

/// A job id goes into the path: it must be a Salesforce id.
fn check_job(job: &str) -> Result<(), CrmError> {
    if !job.is_empty() && job.chars().all(|c| c.is_ascii_alphanumeric()) {
        Ok(())
    } else {
        Err(invalid(format!(
            "bulk query job id {job:?} is not a Salesforce id"
        )))
    }
}

fn decode(endpoint: &str, message: String) -> CrmError {
    CrmError::Decode {
        crm: Crm::Salesforce,
        endpoint: endpoint.to_string(),
        message,
    }
}

fn ok_or_error(endpoint: &str, reply: Reply) -> Result<Reply, CrmError> {
    if (200..300).contains(&reply.status) {
        Ok(reply)
    } else {
        Err(request::error_from_reply(endpoint, &reply))
    }
}

impl SalesforceClient {
    /// Starts a query job for `soql` (see [`bulk_soql`]); the job id.
    pub async fn bulk_query_start(&self, soql: &str) -> Result<String, CrmError> {
        let path = jobs_path(self.api_version());
        let endpoint = format!("POST {path}");
        let body = json!({
            "operation": "query",
            "query": soql,
            "contentType": "CSV",
            "columnDelimiter": "COMMA",
            "lineEnding": "LF",
        });
        let reply = self.send(Method::POST, &path, &[], Some(&body)).await?;
        let reply = ok_or_error(&endpoint, reply)?;
        let info = job_info(&reply.body).map_err(|m| decode(&endpoint, m))?;
        match info.id.filter(|id| check_job(id).is_ok()) {
            Some(id) => Ok(id),
            None => Err(decode(
                &endpoint,
                format!("job info without a job id: {}", reply.body_snippet()),
            )),
        }
    }

    /// Where the job is; poll until it is no longer [`BulkState::Running`].
    pub async fn bulk_query_state(&self, job: &str) -> Result<BulkState, CrmError> {
        check_job(job)?;
        let path = format!("{}/{job}", jobs_path(self.api_version()));
        let endpoint = format!("GET {path}");
        let reply = self.send(Method::GET, &path, &[], None).await?;
        let reply = ok_or_error(&endpoint, reply)?;
        parse_job_state(job, &reply.body).map_err(|m| decode(&endpoint, m))
    }

    /// Aborts a job that has not finished (the CRM refuses a finished one).
    pub async fn bulk_query_abort(&self, job: &str) -> Result<(), CrmError> {
        check_job(job)?;
        let path = format!("{}/{job}", jobs_path(self.api_version()));
        let endpoint = format!("PATCH {path}");
        let body = json!({"state": "Aborted"});
        let reply = self.send(Method::PATCH, &path, &[], Some(&body)).await?;
        ok_or_error(&endpoint, reply).map(|_| ())
    }

    /// One page of a complete job's rows, at most `max_records`, from
    /// `locator` (the first page when `None`); `next` is the locator of the
    /// following page, `None` after the last. The client must speak the API
    /// version the job was created with (the CRM answers 409 otherwise).
    pub async fn bulk_query_page(
        &self,
        job: &str,
        locator: Option<&str>,
        max_records: usize,
    ) -> Result<BookPage, CrmError> {
        check_job(job)?;
        let path = format!("{}/{job}/results", jobs_path(self.api_version()));
        let endpoint = format!("GET {path}");
        let mut query = vec![("maxRecords", max_records.to_string())];
        if let Some(l) = locator {
            query.push(("locator", l.to_string()));
        }
        let reply = self.send(Method::GET, &path, &query, None).await?;
        let reply = ok_or_error(&endpoint, reply)?;
        let count = http::header_str(&reply.headers, "sforce-numberofrecords");
        let count = match count {
            None => None,
            Some(c) => Some(c.trim().parse::<u64>().map_err(|_| {
                decode(
                    &endpoint,
                    format!("Sforce-NumberOfRecords {c:?} is not a number"),
                )
            })?),
        };
        let next = http::header_str(&reply.headers, "sforce-locator");
        parse_results(&reply.body, count, next).map_err(|m| decode(&endpoint, m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_soql_selects_id_first_and_filters_on_a_utc_instant() {
        let q = |since| bulk_soql(ObjectKind::Lead, &["OwnerId", "Id", "Company"], since);
        assert_eq!(q(None).unwrap(), "SELECT Id,OwnerId,Company FROM Lead");
        let cases = [
            ("2026-12-03T10:00:00Z", "2026-12-03T10:00:00Z"),
            ("2026-12-03T10:00:00.5Z", "2026-12-03T10:00:00.500Z"),
            ("2026-12-03t10:00:00.123456z", "2026-12-03T10:00:00.123Z"),
            ("2024-02-29T23:59:59+00:00", "2024-02-29T23:59:59Z"),
        ];
        for (since, literal) in cases {
            assert_eq!(
                q(Some(since)).unwrap(),
                format!("SELECT Id,OwnerId,Company FROM Lead WHERE SystemModstamp > {literal}"),
                "{since}"
            );
        }
        let refused = [
            "2026-12-03",
            "2026-12-03T10:00:00",
            "2026-12-03T10:00:00+02:00",
            "2026-13-03T10:00:00Z",
            "2025-02-29T10:00:00Z",
            "2026-12-03T24:00:00Z",
            "2026-12-03T10:00:00.Z",
            "'2026-12-03T10:00:00Z'",
            "2026-12-03T10:00:00Z OR Id != null",
        ];
        for since in refused {
            let e = q(Some(since)).unwrap_err();
            assert!(matches!(e, CrmError::Config { .. }), "{since}: {e}");
            assert!(e.to_string().contains("RFC 3339"), "{e}");
        }
        assert_eq!(
            bulk_soql(ObjectKind::Account, &["Owner.Email", "Region__c"], None).unwrap(),
            "SELECT Id,Owner.Email,Region__c FROM Account"
        );
        for field in ["Name FROM User", "x,y", "", "1st"] {
            assert!(
                bulk_soql(ObjectKind::Contact, &[field], None).is_err(),
                "{field:?}"
            );
        }
    }

    #[test]
    fn job_states_are_read() {
        let cases: [(&str, BulkState); 5] = [
            (
                r#"{"id":"750A","state":"UploadComplete"}"#,
                BulkState::Running("UploadComplete".into()),
            ),
            (
                r#"{"id":"750A","state":"InProgress"}"#,
                BulkState::Running("InProgress".into()),
            ),
            (
                r#"{"id":"750A","state":"JobComplete","numberRecordsProcessed":3000}"#,
                BulkState::Complete { records: 3000 },
            ),
            (
                r#"{"id":"750A","state":"Failed","errorMessage":"INVALID_FIELD: no such column"}"#,
                BulkState::Failed("INVALID_FIELD: no such column".into()),
            ),
            (
                r#"{"id":"750A","state":"Aborted"}"#,
                BulkState::Failed("bulk query job 750A was aborted".into()),
            ),
        ];
        for (body, want) in cases {
            assert_eq!(parse_job_state("750A", body.as_bytes()), Ok(want), "{body}");
        }
        let failed = parse_job_state("750A", br#"{"state":"Failed"}"#).unwrap();
        assert_eq!(
            failed,
            BulkState::Failed("bulk query job 750A failed without an errorMessage".into())
        );
        for body in [
            &br#"{"state":"JobComplete"}"#[..],
            br#"{"id":"750A"}"#,
            b"[]",
        ] {
            assert!(parse_job_state("750A", body).is_err());
        }
    }

    #[test]
    fn csv_pages_are_read_with_quoting_and_nulls() {
        let body =
            "Id,OwnerId,Company\n00Q1,005A,\"Harbor, \"\"East\"\"\"\n00Q2,,\"Line\nbreak\"\n";
        let page = parse_results(body.as_bytes(), Some(2), Some("MjAwMA")).unwrap();
        assert_eq!(page.next.as_deref(), Some("MjAwMA"));
        assert_eq!(page.records.len(), 2);
        let (id, first) = &page.records[0];
        assert_eq!(id, "00Q1");
        assert_eq!(first["Id"], json!("00Q1"));
        assert_eq!(first["OwnerId"], json!("005A"));
        assert_eq!(first["Company"], json!("Harbor, \"East\""));
        let (id, second) = &page.records[1];
        assert_eq!(id, "00Q2");
        assert_eq!(second["OwnerId"], Value::Null);
        assert_eq!(second["Company"], json!("Line\nbreak"));

        let quoted =
            b"\"Id\",\"Name\"\n\"005R0000000UyrWIAS\",\"Jane Dunn\"\n\"005R0000000GiwjIAC\",\n";
        let page = parse_results(quoted, Some(2), Some("null")).unwrap();
        assert_eq!(page.next, None);
        assert_eq!(page.records[0].1["Name"], json!("Jane Dunn"));
        assert_eq!(page.records[1].0, "005R0000000GiwjIAC");
        assert_eq!(page.records[1].1["Name"], Value::Null);

        let last = parse_results(b"Id,OwnerId\n", Some(0), Some("null")).unwrap();
        assert_eq!(last, BookPage::default());
        assert_eq!(parse_results(b"", None, None).unwrap(), BookPage::default());
        let bom = parse_results(b"\xEF\xBB\xBFId\n00Q1\n", None, None).unwrap();
        assert_eq!(bom.records[0].0, "00Q1");
    }

    #[test]
    fn bad_csv_is_refused_naming_the_row() {
        let cases: [(&[u8], Option<u64>, &str); 5] = [
            (
                b"OwnerId,Company\n005A,Acme\n",
                None,
                "without an Id column",
            ),
            (b"Id,OwnerId\n00Q1,005A\n00Q2\n", None, "CSV row 2"),
            (
                b"Id,OwnerId\n00Q1,005A\n,005B\n",
                None,
                "CSV row 2 has an empty Id",
            ),
            (b"Id,OwnerId\n00Q1,\xFF\n", None, "CSV row 1"),
            (b"Id\n00Q1\n00Q2\n", Some(3), "says 3 rows, the CSV holds 2"),
        ];
        for (body, count, want) in cases {
            let e = parse_results(body, count, None).unwrap_err();
            assert!(e.contains(want), "{e}");
        }
    }

    #[test]
    fn job_ids_must_be_ids() {
        assert!(check_job("7505f000000AbCdEAF").is_ok());
        for job in ["", "750/../sobjects", "750?x=1"] {
            assert!(check_job(job).is_err(), "{job}");
        }
    }
}
