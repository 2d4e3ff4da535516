//! Value normalisation shared by criteria and records, so that
//! "United States", "USA" and "us" compare equal, and "94105-1234" starts
//! with "94".

/// How a field's text is normalised before comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Norm {
    /// Trimmed, lower case.
    Text,
    /// ISO 3166 alpha-2, lower case (`United States` → `us`).
    Country,
    /// US state / Canadian province code, lower case (`California` → `ca`).
    State,
    /// Upper-cased without spaces, ZIP+4 cut to five digits, then lower case.
    Postal,
}

impl Norm {
    /// The normalisation the canonical field `name` gets.
    pub fn for_field(name: &str) -> Norm {
        match name {
            "country" => Norm::Country,
            "state" => Norm::State,
            "postal_code" => Norm::Postal,
            _ => Norm::Text,
        }
    }

    pub fn apply(self, raw: &str) -> String {
        let t = raw.trim().to_lowercase();
        match self {
            Norm::Text => t,
            Norm::Country => country_code(&t).map(str::to_string).unwrap_or(t),
            Norm::State => state_code(&t).map(str::to_string).unwrap_or(t),
            Norm::Postal => postal(&t),
        }
    }
}

fn postal(t: &str) -> String {
    let s: String = t.chars().filter(|c| !c.is_whitespace()).collect();
    let b = s.as_bytes();
    let zip_plus4 = b.len() == 10
        && b[5] == b'-'
        && b[..5].iter().all(u8::is_ascii_digit)
        && b[6..].iter().all(u8::is_ascii_digit);
    if zip_plus4 {
        s[..5].to_string()
    } else {
        s
    }
}

/// Lower-case alpha-2 code for a lower-case country name, alias or code.
fn country_code(t: &str) -> Option<&'static str> {
    let t = t.trim_end_matches('.');
    // Codes first: most CRM values already are codes.
    COUNTRIES
        .iter()
        .find(|(code, _)| *code == t)
        .or_else(|| COUNTRIES.iter().find(|(_, names)| names.contains(&t)))
        .map(|(code, _)| *code)
}

fn state_code(t: &str) -> Option<&'static str> {
    STATES
        .iter()
        .find(|(code, _)| *code == t)
        .or_else(|| STATES.iter().find(|(_, name)| *name == t))
        .map(|(code, _)| *code)
}

/// The domain of an email address, URL or bare domain: lower case, without
/// `www.`; `None` when there is none.
pub fn domain_of(value: &str) -> Option<String> {
    let v = value.trim().to_lowercase();
    let host = match v.rsplit_once('@') {
        Some((_, d)) => d.to_string(),
        None => {
            let no_scheme = v.split_once("://").map_or(v.as_str(), |(_, rest)| rest);
            let host = no_scheme.split(['/', '?', '#']).next().unwrap_or("");
            let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
            host.split(':').next().unwrap_or("").to_string()
        }
    };
    let host = host.trim_end_matches('.');
    let host = host.strip_prefix("www.").unwrap_or(host);
    let valid = host.contains('.')
        && !host.starts_with('.')
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    valid.then(|| host.to_string())
}

/// Whether `domain` is `listed` or one of its subdomains.
pub fn domain_matches(domain: &str, listed: &str) -> bool {
    domain == listed
        || (domain.len() > listed.len()
            && domain.ends_with(listed)
            && domain.as_bytes()[domain.len() - listed.len() - 1] == b'.')
}

/// Free-mail domains that never identify a company. Extended in the rules file.
#[rustfmt::skip]
pub const FREE_MAIL: &[&str] = &[
    "gmail.com", "googlemail.com", "yahoo.com", "yahoo.co.uk", "yahoo.fr", "yahoo.de",
    "ymail.com", "hotmail.com", "hotmail.co.uk", "hotmail.fr", "outlook.com", "live.com",
    "msn.com", "aol.com", "icloud.com", "me.com", "mac.com", "protonmail.com", "proton.me",
    "gmx.com", "gmx.de", "gmx.net", "web.de", "mail.com", "mail.ru", "yandex.ru",
    "yandex.com", "zoho.com", "qq.com", "163.com", "126.com", "naver.com", "fastmail.com",
    "hey.com", "tutanota.com", "orange.fr", "free.fr", "laposte.net", "libero.it",
    "t-online.de", "btinternet.com", "comcast.net", "verizon.net", "att.net", "sbcglobal.net",
    "rediffmail.com",
];

#[rustfmt::skip]
const COUNTRIES: &[(&str, &[&str])] = &[
    ("us", &["usa", "u.s.a", "u.s", "united states", "united states of america", "america"]),
    ("ca", &["can", "canada"]),
    ("mx", &["mex", "mexico", "méxico"]),
    ("br", &["bra", "brazil", "brasil"]),
    ("ar", &["arg", "argentina"]),
    ("cl", &["chl", "chile"]),
    ("co", &["col", "colombia"]),
    ("pe", &["per", "peru", "perú"]),
    ("gb", &["gbr", "uk", "u.k", "united kingdom", "great britain", "england", "scotland", "wales", "northern ireland"]),
    ("ie", &["irl", "ireland"]),
    ("de", &["deu", "germany", "deutschland"]),
    ("fr", &["fra", "france"]),
    ("es", &["esp", "spain", "españa"]),
    ("pt", &["prt", "portugal"]),
    ("it", &["ita", "italy", "italia"]),
    ("nl", &["nld", "netherlands", "the netherlands", "holland"]),
    ("be", &["bel", "belgium"]),
    ("lu", &["lux", "luxembourg"]),
    ("ch", &["che", "switzerland", "schweiz", "suisse"]),
    ("at", &["aut", "austria", "österreich"]),
    ("se", &["swe", "sweden"]),
    ("no", &["nor", "norway"]),
    ("dk", &["dnk", "denmark"]),
    ("fi", &["fin", "finland"]),
    ("is", &["isl", "iceland"]),
    ("pl", &["pol", "poland"]),
    ("cz", &["cze", "czech republic", "czechia"]),
    ("sk", &["svk", "slovakia"]),
    ("hu", &["hun", "hungary"]),
    ("ro", &["rou", "romania"]),
    ("bg", &["bgr", "bulgaria"]),
    ("gr", &["grc", "greece"]),
    ("tr", &["tur", "turkey", "türkiye"]),
    ("ua", &["ukr", "ukraine"]),
    ("il", &["isr", "israel"]),
    ("ae", &["are", "uae", "united arab emirates"]),
    ("sa", &["sau", "saudi arabia"]),
    ("za", &["zaf", "south africa"]),
    ("ng", &["nga", "nigeria"]),
    ("ke", &["ken", "kenya"]),
    ("eg", &["egy", "egypt"]),
    ("in", &["ind", "india"]),
    ("cn", &["chn", "china", "people's republic of china"]),
    ("hk", &["hkg", "hong kong"]),
    ("tw", &["twn", "taiwan"]),
    ("jp", &["jpn", "japan"]),
    ("kr", &["kor", "south korea", "korea", "republic of korea"]),
    ("sg", &["sgp", "singapore"]),
    ("my", &["mys", "malaysia"]),
    ("th", &["tha", "thailand"]),
    ("vn", &["vnm", "vietnam", "viet nam"]),
    ("id", &["idn", "indonesia"]),
    ("ph", &["phl", "philippines"]),
    ("au", &["aus", "australia"]),
    ("nz", &["nzl", "new zealand"]),
];

#[rustfmt::skip]
const STATES: &[(&str, &str)] = &[
    ("al", "alabama"), ("ak", "alaska"), ("az", "arizona"), ("ar", "arkansas"),
    ("ca", "california"), ("co", "colorado"), ("ct", "connecticut"), ("de", "delaware"),
    ("dc", "district of columbia"), ("fl", "florida"), ("ga", "georgia"), ("hi", "hawaii"),
    ("id", "idaho"), ("il", "illinois"), ("in", "indiana"), ("ia", "iowa"), ("ks", "kansas"),
    ("ky", "kentucky"), ("la", "louisiana"), ("me", "maine"), ("md", "maryland"),
    ("ma", "massachusetts"), ("mi", "michigan"), ("mn", "minnesota"), ("ms", "mississippi"),
    ("mo", "missouri"), ("mt", "montana"), ("ne", "nebraska"), ("nv", "nevada"),
    ("nh", "new hampshire"), ("nj", "new jersey"), ("nm", "new mexico"), ("ny", "new york"),
    ("nc", "north carolina"), ("nd", "north dakota"), ("oh", "ohio"), ("ok", "oklahoma"),
    ("or", "oregon"), ("pa", "pennsylvania"), ("ri", "rhode island"), ("sc", "south carolina"),
    ("sd", "south dakota"), ("tn", "tennessee"), ("tx", "texas"), ("ut", "utah"),
    ("vt", "vermont"), ("va", "virginia"), ("wa", "washington"), ("wv", "west virginia"),
    ("wi", "wisconsin"), ("wy", "wyoming"), ("pr", "puerto rico"),
    ("ab", "alberta"), ("bc", "british columbia"), ("mb", "manitoba"), ("nb", "new brunswick"),
    ("nl", "newfoundland and labrador"), ("ns", "nova scotia"), ("nt", "northwest territories"),
    ("nu", "nunavut"), ("on", "ontario"), ("pe", "prince edward island"), ("qc", "quebec"),
    ("sk", "saskatchewan"), ("yt", "yukon"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_values() {
        let cases = [
            (Norm::Country, "United States", "us"),
            (Norm::Country, " USA ", "us"),
            (Norm::Country, "us", "us"),
            (Norm::Country, "U.S.A.", "us"),
            (Norm::Country, "Deutschland", "de"),
            (Norm::Country, "Atlantis", "atlantis"),
            (Norm::State, "California", "ca"),
            (Norm::State, "CA", "ca"),
            (Norm::State, "Ontario", "on"),
            (Norm::Postal, "94105-1234", "94105"),
            (Norm::Postal, "K1A 0B1", "k1a0b1"),
            (Norm::Postal, "SW1A 1AA", "sw1a1aa"),
            (Norm::Text, "  Software ", "software"),
        ];
        for (norm, raw, want) in cases {
            assert_eq!(norm.apply(raw), want, "{norm:?} {raw}");
        }
    }

    #[test]
    fn extracts_domains() {
        let cases = [
            ("brenda@Cardinal.NET", Some("cardinal.net")),
            ("https://www.acme.com/about", Some("acme.com")),
            ("http://shop.acme.co.uk:8080?x=1", Some("shop.acme.co.uk")),
            ("acme.com", Some("acme.com")),
            ("www.acme.com.", Some("acme.com")),
            ("not a domain", None),
            ("", None),
        ];
        for (raw, want) in cases {
            assert_eq!(domain_of(raw).as_deref(), want, "{raw}");
        }
    }

    #[test]
    fn subdomains_match_their_parent() {
        let cases = [
            ("acme.com", "acme.com", true),
            ("eu.acme.com", "acme.com", true),
            ("notacme.com", "acme.com", false),
            ("acme.com", "eu.acme.com", false),
        ];
        for (d, listed, want) in cases {
            assert_eq!(domain_matches(d, listed), want, "{d} {listed}");
        }
    }
}
