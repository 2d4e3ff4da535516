//! Validation: every problem reported at once, with where it is.

use allot_rules::RuleSet;

/// `(rules text, expected fragments of the rendered errors)`.
fn check(text: &str, want: &[&str]) {
    let err = RuleSet::from_toml(text, "rules.toml").expect_err("rules should be invalid");
    let rendered = err.to_string();
    for w in want {
        assert!(rendered.contains(w), "missing {w:?} in:\n{rendered}");
    }
}

const REPS: &str = r#"
[[reps]]
id = "a"
[[reps]]
id = "b"
"#;

#[test]
fn reports_errors_with_locations() {
    let cases: Vec<(String, Vec<&str>)> = vec![
        (format!("{REPS}\n[[teams]]\nid = \"t\"\nmembers = [\"a\"]\ncolour = \"red\"\n"), vec!["rules.toml:10:1: error: unknown field `colour`, expected one of"]),
        (
            format!("{REPS}\n[[territories]]\nid = \"x\"\nowner = {{ rep = \"a\" }}\ncriteria = {{ field = \"country\", like = \"US\" }}\n"),
            vec!["rules.toml:10:33: error: unknown field `like`"],
        ),
        (
            format!("{REPS}\n[[territories]]\nid = \"x\"\nowner = {{ rep = \"zed\" }}\n"),
            vec!["rules.toml:7:1: error: territory \"x\": undefined rep \"zed\""],
        ),
        (format!("{REPS}\n[[teams]]\nid = \"t\"\nmembers = []\n"), vec!["team \"t\" has no members"]),
        (format!("{REPS}\n[[teams]]\nid = \"t\"\nmembers = [\"a\", \"q\"]\n"), vec!["team \"t\": undefined rep \"q\""]),
        (format!("{REPS}\n[[reps]]\nid = \"a\"\n"), vec!["rules.toml:7:1: error: duplicate rep id \"a\""]),
        (
            format!("{REPS}\n[[territories]]\nid = \"p\"\nparent = \"c\"\nowner = {{ rep = \"a\" }}\n[[territories]]\nid = \"c\"\nparent = \"p\"\n"),
            vec!["territory hierarchy has a cycle: p → c → p"],
        ),
        (
            format!("{REPS}\n[[territories]]\nid = \"x\"\nowner = {{ rep = \"a\" }}\n[[territories]]\nid = \"x\"\nowner = {{ rep = \"a\" }}\n"),
            vec!["rules.toml:10:1: error: duplicate territory id \"x\""],
        ),
        (
            format!("{REPS}\n[[territories]]\nid = \"x\"\nowner = {{ rep = \"a\" }}\ncriteria = {{ field = \"company\", regex = \"(\" }}\n"),
            vec!["territory \"x\": bad regex on \"company\""],
        ),
        (
            format!("{REPS}\n[[territories]]\nid = \"x\"\nowner = {{ rep = \"a\" }}\ncriteria = {{ field = \"country\", equals = \"US\", prefix = \"U\" }}\n"),
            vec!["criterion on \"country\" has more than one operator"],
        ),
        (
            format!("{REPS}\n[[territories]]\nid = \"x\"\nowner = {{ team = \"nope\" }}\n[[territories]]\nid = \"y\"\n"),
            vec!["undefined team \"nope\"", "territory \"y\" has no owner and no fallback"],
        ),
        ("[[reps]]\nid = \"a\"\ntimezone = \"Mars/Olympus\"\n".to_string(), vec!["rules.toml:1:1: error: rep \"a\": unknown time zone \"Mars/Olympus\""]),
        ("[engagement]\norder = [\"priority\", \"coin_flip\"]\n".to_string(), vec!["unknown engagement step \"coin_flip\""]),
        ("fallback = { rep = \"a\", team = \"t\" }\n[[reps]]\nid = \"a\"\n".to_string(), vec!["an owner names exactly one of `rep` or `team`"]),
        ("version = \n".to_string(), vec!["rules.toml:1:"]),
    ];
    for (text, want) in &cases {
        check(text, want);
    }
}

#[test]
fn reports_all_errors_at_once() {
    let text = format!("{REPS}\n[[teams]]\nid = \"t\"\nmembers = []\n[[territories]]\nid = \"x\"\nowner = {{ rep = \"zed\" }}\n");
    let err = RuleSet::from_toml(&text, "r.toml").expect_err("invalid");
    assert_eq!(err.diagnostics.len(), 2, "{err}");
}

#[test]
fn warns_about_overlaps_settled_by_tie_break() {
    let text = format!(
        "{REPS}\n[[territories]]\nid = \"b-us\"\nowner = {{ rep = \"a\" }}\ncriteria = {{ field = \"country\", equals = \"US\" }}\n\
         [[territories]]\nid = \"a-software\"\nowner = {{ rep = \"b\" }}\ncriteria = {{ field = \"industry\", equals = \"Software\" }}\n\
         [[territories]]\nid = \"c-de\"\nowner = {{ rep = \"b\" }}\ncriteria = {{ field = \"country\", equals = \"DE\" }}\n"
    );
    let rules = RuleSet::from_toml(&text, "r.toml").expect("valid");
    let msgs: Vec<String> = rules.warnings.iter().map(|w| w.render("r.toml")).collect();
    // us/software and de/software may overlap; us and de cannot.
    assert_eq!(msgs.len(), 2, "{msgs:#?}");
    assert!(
        msgs[0].starts_with(
            "r.toml:7:1: warning: territories \"b-us\" and \"a-software\" may overlap"
        ),
        "{msgs:#?}"
    );
    assert!(
        msgs.iter()
            .all(|m| !(m.contains("b-us") && m.contains("c-de"))),
        "{msgs:#?}"
    );
}

#[test]
fn example_rules_are_valid() {
    let text = include_str!("../../../config/rules.example.toml");
    let rules = RuleSet::from_toml(text, "rules.example.toml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rules.version, "example-2026-11");
    assert_eq!(rules.territories.len(), 7);
    assert!(rules.territory("na-bay-area").is_some_and(|t| t.depth == 2));
}
