//! Company domains from e-mail addresses and websites.

/// The company domain in an e-mail address or a website, lower case, without
/// `www.`: `brenda@Cardinal.NET` → `cardinal.net`, `https://www.acme.com/about` →
/// `acme.com`, `acme.com` → `acme.com`.
///
/// `None` when the value holds no plausible host name: no dot, spaces, empty
/// labels, characters other than letters, digits and `-`, or a numeric last label
/// (IP addresses are not domains).
pub fn domain_of(value: &str) -> Option<String> {
    let v = value.trim();
    let host = if let Some((_, rest)) = v.split_once("://") {
        let rest = rest.split(['/', '?', '#']).next().unwrap_or_default();
        // user:pass@host
        rest.rsplit_once('@').map_or(rest, |(_, h)| h)
    } else if let Some((_, domain)) = v.rsplit_once('@') {
        domain
    } else {
        v.split(['/', '?', '#']).next().unwrap_or_default()
    };
    let host = host.split(':').next().unwrap_or_default();
    let host = host.trim_end_matches('.').to_lowercase();
    let host = host.strip_prefix("www.").unwrap_or(&host);
    valid_host(host).then(|| host.to_string())
}

fn valid_host(host: &str) -> bool {
    let labels: Vec<&str> = host.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.chars().any(char::is_alphabetic))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains() {
        let cases = [
            ("brenda@Cardinal.NET", Some("cardinal.net")),
            ("https://www.acme.com/about", Some("acme.com")),
            ("acme.com", Some("acme.com")),
            ("garbage", None),
            ("", None),
            ("  WWW.Acme.Co.UK  ", Some("acme.co.uk")),
            ("http://acme.com:8080/x?y=1", Some("acme.com")),
            ("acme.com/pricing", Some("acme.com")),
            ("mailto:sales@acme.io", Some("acme.io")),
            ("https://user@acme.dev", Some("acme.dev")),
            ("http://192.168.0.1", None),
            ("not a domain.com", None),
            ("n/a", None),
            ("x@", None),
            ("a..b", None),
            ("-acme.com", None),
            ("münchen.de", Some("münchen.de")),
        ];
        for (input, want) in cases {
            assert_eq!(domain_of(input).as_deref(), want, "{input:?}");
        }
    }
}
