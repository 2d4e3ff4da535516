//! Field maps: shipped defaults, TOML errors, apply.

use allot_core::{Crm, ObjectKind, Value};
use allot_events::{FieldMap, FieldMapError};

use crate::{fields, s};

#[test]
fn shipped_maps_parse() {
    for text in [
        include_str!("../../../../config/fieldmaps/salesforce.toml"),
        include_str!("../../../../config/fieldmaps/hubspot.toml"),
    ] {
        let map = FieldMap::from_toml(text).unwrap();
        assert_ne!(map, FieldMap::default());
    }
}

#[test]
fn default_mappings() {
    use ObjectKind::*;
    let sf = FieldMap::for_crm(Crm::Salesforce);
    let hs = FieldMap::for_crm(Crm::Hubspot);
    let native = FieldMap::for_crm(Crm::Native);
    let cases = [
        (&sf, Lead, "Country", Some("country")),
        (&sf, Lead, "CountryCode", Some("country")),
        (&sf, Lead, "StateCode", Some("state")),
        (&sf, Lead, "NumberOfEmployees", Some("employees")),
        (&sf, Lead, "AnnualRevenue", Some("annual_revenue")),
        (&sf, Lead, "LeadSource", Some("lead_source")),
        (&sf, Lead, "Company", Some("company")),
        (&sf, Lead, "OwnerId", Some("owner")),
        (&sf, Lead, "FirstName", None),
        (&sf, Account, "BillingPostalCode", Some("postal_code")),
        (&sf, Account, "Name", Some("company")),
        (&sf, Account, "Website", Some("website")),
        (&sf, Account, "Country", None),
        (&sf, Contact, "MailingCity", Some("city")),
        (&sf, Contact, "Email", Some("email")),
        (&hs, Contact, "zip", Some("postal_code")),
        (&hs, Contact, "hs_lead_source", Some("lead_source")),
        (&hs, Contact, "lead_source", Some("lead_source")),
        (&hs, Contact, "hubspot_owner_id", Some("owner")),
        (&hs, Account, "domain", Some("domain")),
        (&hs, Account, "name", Some("company")),
        (&hs, Account, "numberofemployees", Some("employees")),
        (&hs, Lead, "email", None),
        (&native, Lead, "country", Some("country")),
        (&native, Account, "owner", Some("owner")),
        (&native, Lead, "Country", None),
    ];
    for (map, object, field, want) in cases {
        assert_eq!(map.canonical(object, field), want, "{object} {field}");
    }
    let reverse = [
        (&sf, Lead, "country", vec!["CountryCode", "Country"]),
        (
            &sf,
            Account,
            "state",
            vec!["BillingStateCode", "BillingState"],
        ),
        (&sf, Account, "owner", vec!["OwnerId"]),
        (&hs, Account, "postal_code", vec!["zip"]),
        (&hs, Contact, "nothing", vec![]),
        (&native, Contact, "email", vec!["email"]),
    ];
    for (map, object, canonical, want) in reverse {
        assert_eq!(
            map.crm_fields_for(object, canonical),
            want,
            "{object} {canonical}"
        );
    }
    assert!(sf.mapped_crm_fields(Contact).contains(&"MailingPostalCode"));
}

#[test]
fn apply_prefers_codes_keeps_raw_names_and_derives_domain() {
    let sf = FieldMap::salesforce_default();
    let hs = FieldMap::hubspot_default();
    let cases = vec![
        (
            &sf,
            ObjectKind::Lead,
            fields(&[
                ("Country", s("United States")),
                ("CountryCode", s("US")),
                ("State", s("Washington")),
                ("StateCode", Value::Null),
                ("Foo__c", s("x")),
            ]),
            fields(&[
                ("country", s("US")),
                ("state", s("Washington")),
                ("Foo__c", s("x")),
            ]),
        ),
        (
            &sf,
            ObjectKind::Lead,
            fields(&[
                ("State", Value::Null),
                ("Email", s("ann@Initech.com")),
                ("Website", s("https://www.other.com")),
            ]),
            fields(&[
                ("state", Value::Null),
                ("email", s("ann@Initech.com")),
                ("website", s("https://www.other.com")),
                ("domain", s("initech.com")),
            ]),
        ),
        (
            &sf,
            ObjectKind::Account,
            fields(&[("Website", s("www.Acme.com")), ("Name", s("Acme"))]),
            fields(&[
                ("website", s("www.Acme.com")),
                ("company", s("Acme")),
                ("domain", s("acme.com")),
            ]),
        ),
        (
            &hs,
            ObjectKind::Account,
            fields(&[
                ("domain", s("acme.io")),
                ("website", s("https://acme.com")),
                ("hubspot_owner_id", s("77")),
            ]),
            fields(&[
                ("domain", s("acme.io")),
                ("website", s("https://acme.com")),
                ("owner", s("77")),
            ]),
        ),
        (
            &hs,
            ObjectKind::Contact,
            fields(&[("email", s("garbage"))]),
            fields(&[("email", s("garbage"))]),
        ),
    ];
    for (map, object, input, want) in cases {
        assert_eq!(map.apply(object, &input), want, "{input:?}");
    }
}

#[test]
fn toml_errors() {
    let cases = [
        ("[lead]\ncountry = \"Country\"\ncontry = \"X\"\n", "field map: invalid TOML at line 3 column 1: unknown field `contry`, expected one of `country`, `state`, `postal_code`, `city`, `industry`, `employees`, `annual_revenue`, `email`, `website`, `domain`, `company`, `lead_source`, `owner`, `extra`"),
        ("[opportunity]\n", "field map: invalid TOML at line 1 column 2: unknown field `opportunity`, expected one of `lead`, `account`, `contact`"),
        ("[lead\n", "field map: invalid TOML at line 1 column 6: invalid table header\nexpected `.`, `]`"),
        (
            "[lead]\ncountry = \"Country\"\nstate = [\"Country\"]\ncity = []\n[lead.extra]\nemail = \"E\"\n",
            "field map: [lead.extra] email: is a built-in name, set it in [lead]; [lead] state: CRM field \"Country\" is already mapped to country; [lead] city: empty list of CRM fields",
        ),
    ];
    for (text, want) in cases {
        let err = FieldMap::from_toml(text).unwrap_err();
        assert_eq!(err.to_string(), want, "{text}");
    }
    assert!(matches!(
        FieldMap::from_toml("[lead]\ncity = 3\n"),
        Err(FieldMapError::Toml { .. })
    ));
}

#[test]
fn extra_canonical_names() {
    let map = FieldMap::from_toml(
        "[lead]\ncountry = \"Country\"\n[lead.extra]\nsegment = [\"Segment__c\", \"Tier__c\"]\n",
    )
    .unwrap();
    assert_eq!(map.canonical(ObjectKind::Lead, "Tier__c"), Some("segment"));
    let got = map.apply(
        ObjectKind::Lead,
        &fields(&[("Tier__c", s("gold")), ("Country", s("FR"))]),
    );
    assert_eq!(got, fields(&[("segment", s("gold")), ("country", s("FR"))]));
    assert_eq!(map.canonical(ObjectKind::Account, "Country"), None);
}
