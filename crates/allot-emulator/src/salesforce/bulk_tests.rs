//! Bulk API 2.0 query jobs over 127.0.0.1, as a client sees them.

use super::*;

use reqwest::Method;
use serde_json::Map;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::{Emulator, EmulatorOptions, Seed};

const ALICE: &str = "0055f000001AAAAAA4";
const BOB: &str = "0055f000001ABBBAA4";
const JOBS: &str = "/services/data/v62.0/jobs/query";

/// Five leads in id order: two modified in January, three in June; one
/// without an owner, one whose company needs quoting.
fn seed() -> Seed {
    let lead = |n: usize, owner: Value, company: &str, modified: &str| {
        json!({"Id": format!("00Q5f000006QW0{n}EAC"), "LastName": format!("L{n}"),
               "Company": company, "OwnerId": owner, "LastModifiedDate": modified})
    };
    let jan = "2026-01-10T08:00:00.000Z";
    let jun = "2026-06-10T08:00:00.000Z";
    let text = json!({
        "salesforce": {
            "users": [
                {"Id": ALICE, "Name": "Alice", "Email": "alice@acme.example", "IsActive": true},
                {"Id": BOB, "Name": "Bob", "Email": "bob@acme.example", "IsActive": true}
            ],
            "leads": [
                lead(1, json!(ALICE), "Cardinal", jan),
                lead(2, json!(BOB), "Harbor, \"East\"", jan),
                lead(3, Value::Null, "Verdant", jun),
                lead(4, json!(ALICE), "Line\nbreak", jun),
                lead(5, json!(BOB), "Atlas", jun)
            ],
            "accounts": [{"Id": "0015f00002JUX00EAA", "Name": "Atlas Robotics", "OwnerId": BOB}]
        },
        "hubspot": {}
    });
    Seed::from_json(&text.to_string(), "bulk test").unwrap()
}

fn lead_id(n: usize) -> String {
    format!("00Q5f000006QW0{n}EAC")
}

struct Running {
    base: String,
    emulator: Emulator,
    http: reqwest::Client,
    token: String,
    _stop: oneshot::Sender<()>,
}

async fn start() -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let emulator = Emulator::new(seed(), EmulatorOptions::default());
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(emulator.serve(listener, async {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::new();
    let o = EmulatorOptions::default();
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", o.salesforce_client_id.as_str()),
        ("client_secret", o.salesforce_client_secret.as_str()),
    ];
    let body: Value = http
        .post(format!("{base}/services/oauth2/token"))
        .form(&form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = body["access_token"].as_str().unwrap().to_string();
    Running {
        base,
        emulator,
        http,
        token,
        _stop: stop,
    }
}

/// Status, headers and body text of one answer.
struct Answer {
    status: u16,
    headers: HeaderMap,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap()
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("no {name} header"))
    }

    /// The `errorCode` of a Salesforce error array.
    fn error_code(&self) -> String {
        let body = self.json();
        body[0]["errorCode"].as_str().unwrap().to_string()
    }
}

impl Running {
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.unwrap();
        Answer {
            status: r.status().as_u16(),
            headers: r.headers().clone(),
            text: r.text().await.unwrap(),
        }
    }

    async fn create(&self, query: &str) -> Answer {
        let body = json!({"operation": "query", "query": query});
        self.call(Method::POST, JOBS, Some(body)).await
    }

    async fn state(&self, id: &str) -> Answer {
        self.call(Method::GET, &format!("{JOBS}/{id}"), None).await
    }

    async fn results(&self, id: &str, query: &str) -> Answer {
        let path = format!("{JOBS}/{id}/results{query}");
        self.call(Method::GET, &path, None).await
    }

    /// Creates a job and polls it to its end; the job id and the last state info.
    async fn run(&self, query: &str) -> (String, Value) {
        let created = self.create(query).await;
        assert_eq!(created.status, 200, "{}", created.text);
        let id = created.json()["id"].as_str().unwrap().to_string();
        let first = self.state(&id).await.json();
        assert_eq!(first["state"], "InProgress");
        (id.clone(), self.state(&id).await.json())
    }
}

/// Splits CSV without quoted newlines into rows.
fn lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

#[tokio::test]
async fn a_job_runs_through_its_states_and_pages_with_locators() {
    let em = start().await;
    let usage_before = em.emulator.shared.lock().sf_usage;
    let created = em.create("SELECT Id,OwnerId,Company FROM Lead").await;
    assert_eq!(created.status, 200, "{}", created.text);
    let info = created.json();
    let id = info["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("750") && id.len() == 18, "{id}");
    assert_eq!(info["state"], "UploadComplete");
    assert_eq!(info["operation"], "query");
    assert_eq!(info["object"], "Lead");
    assert_eq!(info["apiVersion"], json!(62.0));
    assert_eq!(info["contentType"], "CSV");
    assert_eq!(info["lineEnding"], "LF");
    assert_eq!(info["columnDelimiter"], "COMMA");
    assert_eq!(info["concurrencyMode"], "Parallel");
    assert!(info["createdById"].as_str().unwrap().starts_with("005"));
    assert!(info["createdDate"].as_str().unwrap().ends_with("+0000"));

    let early = em.results(&id, "").await;
    assert_eq!(early.status, 400, "results before the job completes");
    assert_eq!(early.error_code(), "INVALIDJOB");

    let polled = em.state(&id).await.json();
    assert_eq!(polled["state"], "InProgress");
    assert!(polled.get("numberRecordsProcessed").is_none());
    let done = em.state(&id).await.json();
    assert_eq!(done["state"], "JobComplete");
    assert_eq!(done["numberRecordsProcessed"], 5);
    assert_eq!(em.state(&id).await.json()["state"], "JobComplete");

    let first = em.results(&id, "?maxRecords=2").await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert!(first.header("content-type").starts_with("text/csv"));
    assert_eq!(first.header("sforce-numberofrecords"), "2");
    assert!(first.header("sforce-limit-info").starts_with("api-usage="));
    let l2 = first.header("sforce-locator").to_string();
    assert_ne!(l2, "null");
    let want_first = format!(
        "\"Id\",\"OwnerId\",\"Company\"\n\"{}\",\"{ALICE}\",\"Cardinal\"\n\"{}\",\"{BOB}\",\"Harbor, \"\"East\"\"\"\n",
        lead_id(1),
        lead_id(2)
    );
    assert_eq!(first.text, want_first);

    let second = em
        .results(&id, &format!("?maxRecords=2&locator={l2}"))
        .await;
    assert_eq!(second.status, 200, "{}", second.text);
    assert_eq!(second.header("sforce-numberofrecords"), "2");
    let want_second = format!(
        "\"Id\",\"OwnerId\",\"Company\"\n\"{}\",,\"Verdant\"\n\"{}\",\"{ALICE}\",\"Line\nbreak\"\n",
        lead_id(3),
        lead_id(4)
    );
    assert_eq!(second.text, want_second, "null owner is an empty cell");
    let l3 = second.header("sforce-locator").to_string();
    assert_ne!(l3, l2);

    let last = em
        .results(&id, &format!("?maxRecords=2&locator={l3}"))
        .await;
    assert_eq!(last.header("sforce-numberofrecords"), "1");
    assert_eq!(last.header("sforce-locator"), "null");
    assert_eq!(
        lines(&last.text),
        [
            "\"Id\",\"OwnerId\",\"Company\"",
            &format!("\"{}\",\"{BOB}\",\"Atlas\"", lead_id(5))
        ]
    );

    // Without maxRecords everything fits the default page.
    let all = em.results(&id, "").await;
    assert_eq!(all.header("sforce-numberofrecords"), "5");
    assert_eq!(all.header("sforce-locator"), "null");

    // Every call counted as an API request, and the rows as reads.
    let st = em.emulator.shared.lock();
    assert_eq!(st.sf_usage - usage_before, 9);
    let stats = st.stats();
    assert_eq!(stats.calls["sf.bulk.create"], 1);
    assert_eq!(stats.calls["sf.bulk.job"], 3);
    assert_eq!(stats.calls["sf.bulk.results"], 5);
    assert_eq!(stats.records_read.salesforce, 10);
}

#[tokio::test]
async fn rows_are_a_snapshot_taken_at_completion() {
    let em = start().await;
    let (id, done) = em.run("SELECT Id,OwnerId FROM Lead").await;
    assert_eq!(done["numberRecordsProcessed"], 5);
    {
        let mut st = em.emulator.shared.lock();
        let mut extra = Map::new();
        extra.insert("Id".into(), json!(lead_id(6)));
        extra.insert("OwnerId".into(), json!(ALICE));
        st.sf_records
            .insert((allot_core::ObjectKind::Lead, lead_id(6)), extra);
        if let Some(r) = st
            .sf_records
            .get_mut(&(allot_core::ObjectKind::Lead, lead_id(1)))
        {
            r.insert("OwnerId".into(), json!(BOB));
        }
    }
    let page = em.results(&id, "").await;
    assert_eq!(page.header("sforce-numberofrecords"), "5");
    assert!(page
        .text
        .contains(&format!("\"{}\",\"{ALICE}\"\n", lead_id(1))));
    assert!(!page.text.contains(&lead_id(6)));
}

#[tokio::test]
async fn since_and_limit_select_rows_and_other_objects_work() {
    let em = start().await;
    let (id, done) = em
        .run("SELECT Id,OwnerId FROM Lead WHERE SystemModstamp > 2026-03-01T00:00:00Z")
        .await;
    assert_eq!(done["numberRecordsProcessed"], 3);
    let page = em.results(&id, "").await;
    let ids: Vec<&str> = lines(&page.text)[1..]
        .iter()
        .map(|l| l.split(',').next().unwrap().trim_matches('"'))
        .collect();
    assert_eq!(ids, [lead_id(3), lead_id(4), lead_id(5)]);

    let (id, done) = em
        .run("SELECT Id FROM Lead WHERE SystemModstamp > 2027-01-01T00:00:00Z")
        .await;
    assert_eq!(done["numberRecordsProcessed"], 0);
    let empty = em.results(&id, "").await;
    assert_eq!(empty.text, "\"Id\"\n");
    assert_eq!(empty.header("sforce-numberofrecords"), "0");
    assert_eq!(empty.header("sforce-locator"), "null");

    let (_, done) = em.run("SELECT Id FROM Lead ORDER BY Id LIMIT 4").await;
    assert_eq!(done["numberRecordsProcessed"], 4);

    let (id, done) = em.run("SELECT Id, Name, OwnerId FROM Account").await;
    assert_eq!(done["object"], "Account");
    assert_eq!(done["numberRecordsProcessed"], 1);
    let page = em.results(&id, "").await;
    assert_eq!(
        page.text,
        format!(
            "\"Id\",\"Name\",\"OwnerId\"\n\"0015f00002JUX00EAA\",\"Atlas Robotics\",\"{BOB}\"\n"
        )
    );
}

#[tokio::test]
async fn results_need_the_jobs_api_version() {
    let em = start().await;
    let (id, done) = em.run("SELECT Id,OwnerId FROM Lead").await;
    assert_eq!(done["state"], "JobComplete");
    let other = em
        .call(
            Method::GET,
            &format!("/services/data/v61.0/jobs/query/{id}/results"),
            None,
        )
        .await;
    assert_eq!(other.status, 409, "{}", other.text);
    assert_eq!(other.error_code(), "API_VERSION_MISMATCH");
    assert!(other.json()[0]["message"]
        .as_str()
        .unwrap()
        .contains("62.0"));
    assert_eq!(em.results(&id, "").await.status, 200);
}

#[tokio::test]
async fn unknown_jobs_are_not_found() {
    let em = start().await;
    let missing = "7505f000000NOPEAAA";
    let state = em.state(missing).await;
    assert_eq!(state.status, 404);
    assert_eq!(state.error_code(), "NOT_FOUND");
    let results = em.results(missing, "").await;
    assert_eq!(results.status, 404);
    assert_eq!(results.error_code(), "NOT_FOUND");
}

#[tokio::test]
async fn a_query_that_cannot_run_fails_the_job() {
    let em = start().await;
    let cases = [
        ("SELECT Id FROM Lead GROUP BY Id", "MALFORMED_QUERY"),
        (
            "SELECT Id FROM Lead WHERE SystemModstamp > '2026-12-03'",
            "INVALID_FIELD",
        ),
        ("SELECT Id,IsActive FROM User", "INVALID_TYPE"),
        ("SELECT Id", "MALFORMED_QUERY"),
    ];
    for (query, code) in cases {
        let (id, done) = em.run(query).await;
        assert_eq!(done["state"], "Failed", "{query}");
        let message = done["errorMessage"].as_str().unwrap();
        assert!(message.starts_with(code), "{query}: {message}");
        let results = em.results(&id, "").await;
        assert_eq!(results.status, 400, "{query}");
    }
}

#[tokio::test]
async fn bad_requests_are_refused_at_creation() {
    let em = start().await;
    let cases = [
        (
            json!({"operation": "insert", "query": "SELECT Id FROM Lead"}),
            "INVALIDJOB",
        ),
        (json!({"operation": "query"}), "INVALIDJOB"),
        (
            json!({"operation": "query", "query": "SELECT Id FROM Lead", "columnDelimiter": "TAB"}),
            "INVALIDJOB",
        ),
        (json!(["not", "an", "object"]), "JSON_PARSER_ERROR"),
    ];
    for (body, code) in cases {
        let answer = em.call(Method::POST, JOBS, Some(body.clone())).await;
        assert_eq!(answer.status, 400, "{body}");
        assert_eq!(answer.error_code(), code, "{body}");
    }
    assert!(em.emulator.shared.lock().bulk_jobs.is_empty());
    let query_all = json!({"operation": "queryAll", "query": "SELECT Id FROM Lead"});
    let answer = em.call(Method::POST, JOBS, Some(query_all)).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()["operation"], "queryAll");
}

#[tokio::test]
async fn bad_page_parameters_are_refused() {
    let em = start().await;
    let (id, _) = em.run("SELECT Id FROM Lead").await;
    for query in [
        "?maxRecords=0",
        "?maxRecords=many",
        "?locator=%21%21",
        "?locator=OTk",
    ] {
        let answer = em.results(&id, query).await;
        assert_eq!(answer.status, 400, "{query}: {}", answer.text);
    }
    assert_eq!(locator_offset(&locator(1000)), Some(1000));
    assert_eq!(
        max_records(Some(&"1000000".to_string())),
        Ok(MAX_RECORDS_CAP)
    );
    assert_eq!(max_records(None), Ok(DEFAULT_MAX_RECORDS));
}

#[tokio::test]
async fn a_running_job_can_be_aborted_once() {
    let em = start().await;
    let created = em.create("SELECT Id FROM Lead").await.json();
    let id = created["id"].as_str().unwrap();
    let path = format!("{JOBS}/{id}");
    let aborted = em
        .call(Method::PATCH, &path, Some(json!({"state": "Aborted"})))
        .await;
    assert_eq!(aborted.status, 200, "{}", aborted.text);
    assert_eq!(aborted.json()["state"], "Aborted");
    assert_eq!(em.state(id).await.json()["state"], "Aborted");
    assert_eq!(em.results(id, "").await.status, 400);
    let again = em
        .call(Method::PATCH, &path, Some(json!({"state": "Aborted"})))
        .await;
    assert_eq!(again.status, 400);
    let other = em
        .call(Method::PATCH, &path, Some(json!({"state": "JobComplete"})))
        .await;
    assert_eq!(other.status, 400);
}

#[tokio::test]
async fn bulk_calls_need_a_session() {
    let em = start().await;
    let answer = em
        .http
        .post(format!("{}{JOBS}", em.base))
        .json(&json!({"operation": "query", "query": "SELECT Id FROM Lead"}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 401);
}
