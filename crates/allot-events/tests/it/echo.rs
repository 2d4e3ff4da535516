//! Loop prevention: allot's own writes coming back.

use allot_core::{ChangeEvent, ChangeKind, Crm, ObjectKind};
use allot_events::EchoFilter;

use crate::event;

fn with_origin(source: Crm, origin: Option<&str>) -> ChangeEvent {
    ChangeEvent {
        origin: origin.map(str::to_string),
        ..event(source, "1", ObjectKind::Lead, Some("L"), ChangeKind::Update)
    }
}

#[test]
fn own_echoes() {
    let filter = EchoFilter {
        salesforce_client_id: Some("allot".into()),
        hubspot_source_ids: vec!["userId:45678".into()],
        hubspot_app_id: Some("1160452".into()),
    };
    let cases = [
        (
            Crm::Salesforce,
            Some("com/salesforce/api/rest/62.0;client=allot"),
            true,
        ),
        (Crm::Salesforce, Some("client=allot"), true),
        (
            Crm::Salesforce,
            Some("com/salesforce/api/rest/62.0;client=allot-test"),
            false,
        ),
        (
            Crm::Salesforce,
            Some("com/salesforce/api/rest/62.0;client=SfdxCLI"),
            false,
        ),
        (Crm::Salesforce, Some("com/salesforce/api/rest/62.0"), false),
        (Crm::Salesforce, None, false),
        (Crm::Hubspot, Some("CRM_UI:userId:45678"), true),
        (Crm::Hubspot, Some("API:userId:45678"), true),
        (Crm::Hubspot, Some("CRM_UI:userId:456789"), false),
        (Crm::Hubspot, Some("INTEGRATION:1160452"), true),
        (Crm::Hubspot, Some("INTEGRATION:appId:1160452"), true),
        (Crm::Hubspot, Some("INTEGRATION:999"), false),
        (Crm::Hubspot, Some("CRM_UI:1160452"), false),
        (Crm::Hubspot, Some("CRM_UI"), false),
        (Crm::Native, Some("client=allot"), false),
    ];
    for (source, origin, want) in cases {
        assert_eq!(
            filter.is_own_echo(&with_origin(source, origin)),
            want,
            "{source} {origin:?}"
        );
    }
    let empty = EchoFilter::default();
    assert!(!empty.is_own_echo(&with_origin(Crm::Salesforce, Some("x;client="))));
}
