//! The string formats kube-apiserver checks in CRD schemas: the kube-openapi `strfmt` registry
//! trimmed to the formats apiextensions supports, each judged as the Go validator judges it.

use std::sync::LazyLock;

use regex::Regex;

fn rx(pattern: &str) -> Option<Regex> {
    Regex::new(pattern).ok()
}

fn matches(re: &LazyLock<Option<Regex>>, s: &str) -> bool {
    re.as_ref().is_some_and(|r| r.is_match(s))
}

static HOSTNAME: LazyLock<Option<Regex>> = LazyLock::new(|| {
    rx(
        r"^([a-zA-Z0-9\p{S}\p{L}]((-?[a-zA-Z0-9\p{S}\p{L}]{0,62})?)|([a-zA-Z0-9\p{S}\p{L}](([a-zA-Z0-9\-\p{S}\p{L}]{0,61}[a-zA-Z0-9\p{S}\p{L}])?)(\.)){1,}([a-zA-Z\p{L}]){2,63})$",
    )
});
static UUID: LazyLock<Option<Regex>> =
    LazyLock::new(|| rx(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$"));
static UUID3: LazyLock<Option<Regex>> =
    LazyLock::new(|| rx(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?3[0-9a-f]{3}-?[0-9a-f]{4}-?[0-9a-f]{12}$"));
static UUID4: LazyLock<Option<Regex>> =
    LazyLock::new(|| rx(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?4[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$"));
static UUID5: LazyLock<Option<Regex>> =
    LazyLock::new(|| rx(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?5[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$"));
static CREDIT_CARD: LazyLock<Option<Regex>> = LazyLock::new(|| {
    rx(
        r"^(?:4[0-9]{12}(?:[0-9]{3})?|5[1-5][0-9]{14}|6(?:011|5[0-9][0-9])[0-9]{12}|3[47][0-9]{13}|3(?:0[0-5]|[68][0-9])[0-9]{11}|(?:2131|1800|35[0-9]{3})[0-9]{11})$",
    )
});
static HEXCOLOR: LazyLock<Option<Regex>> = LazyLock::new(|| rx(r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$"));
static RGBCOLOR: LazyLock<Option<Regex>> = LazyLock::new(|| {
    let c = r"(0|[1-9][0-9]?|1[0-9][0-9]?|2[0-4][0-9]|25[0-5])";
    let s = r"[\t\n\f\r ]*";
    rx(&format!(r"^rgb\({s}{c}{s},{s}{c}{s},{s}{c}{s}\)$"))
});
static BASE64: LazyLock<Option<Regex>> =
    LazyLock::new(|| rx(r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{4})$"));
static SSN: LazyLock<Option<Regex>> = LazyLock::new(|| rx(r"^[0-9]{3}[- ]?[0-9]{2}[- ]?[0-9]{4}$"));
static DATE_TIME_TAIL: LazyLock<Option<Regex>> =
    LazyLock::new(|| rx(r"^([0-9]{2}):([0-9]{2}):([0-9]{2})(.[0-9]+)?(z|([+-][0-9]{2}:[0-9]{2}))$"));
static SHORT_NAME: LazyLock<Option<Regex>> = LazyLock::new(|| rx(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"));
static LONG_NAME: LazyLock<Option<Regex>> =
    LazyLock::new(|| rx(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"));
static GO_DURATION: LazyLock<Option<Regex>> =
    LazyLock::new(|| rx(r"^[-+]?(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+$"));
static SCALA_DURATION: LazyLock<Option<Regex>> = LazyLock::new(|| rx(r"(([0-9]+)[\t\n\f\r ]*([A-Za-zµ]+))"));

/// The normalized names (dashes removed) of the string formats apiextensions validates.
const SUPPORTED: &[&str] = &[
    "bsonobjectid",
    "uri",
    "email",
    "hostname",
    "ipv4",
    "ipv6",
    "cidr",
    "mac",
    "uuid",
    "uuid3",
    "uuid4",
    "uuid5",
    "isbn",
    "isbn10",
    "isbn13",
    "creditcard",
    "ssn",
    "hexcolor",
    "rgbcolor",
    "byte",
    "password",
    "date",
    "duration",
    "datetime",
    "k8sshortname",
    "k8slongname",
];

/// The format kube-apiserver keeps after stripping the ones it does not support for `type`
/// (it blanks unknown formats rather than rejecting them).
pub(crate) fn effective_format(ty: &[&str], format: &str) -> String {
    if format.is_empty() {
        return String::new();
    }
    let single = if ty.len() == 1 { ty[0] } else { "" };
    let keep = match single {
        "" | "string" => SUPPORTED.contains(&format.replace('-', "").as_str()),
        "integer" => format == "int32" || format == "int64",
        "number" => format == "float" || format == "double",
        _ => false,
    };
    if keep { format.to_string() } else { String::new() }
}

/// Whether `format` names a string format of the registry (so the format validator applies).
pub(crate) fn is_string_format(format: &str) -> bool {
    SUPPORTED.contains(&format.replace('-', "").as_str())
}

/// Whether `s` is valid for the string `format`.
pub(crate) fn validates(format: &str, s: &str) -> bool {
    match format.replace('-', "").as_str() {
        "bsonobjectid" => s.len() == 24 && s.bytes().all(|b| b.is_ascii_hexdigit()),
        "uri" => is_request_uri(s),
        "email" => is_email(s),
        "hostname" => is_hostname(s),
        "ipv4" => parse_ip(s, true).is_some() && s.contains('.'),
        "ipv6" => parse_ip(s, false).is_some() && s.contains(':'),
        "cidr" => is_cidr(s),
        "mac" => is_mac(s),
        "uuid" => matches(&UUID, s),
        "uuid3" => matches(&UUID3, s),
        "uuid4" => matches(&UUID4, s),
        "uuid5" => matches(&UUID5, s),
        "isbn" => is_isbn(s, 10) || is_isbn(s, 13),
        "isbn10" => is_isbn(s, 10),
        "isbn13" => is_isbn(s, 13),
        "creditcard" => is_credit_card(s),
        "ssn" => s.len() == 11 && matches(&SSN, s),
        "hexcolor" => matches(&HEXCOLOR, s),
        "rgbcolor" => matches(&RGBCOLOR, s),
        "byte" => matches(&BASE64, s),
        "password" => true,
        "date" => parse_date(s).is_some(),
        "duration" => parse_duration(s).is_some(),
        "datetime" => is_date_time(s),
        "k8sshortname" => s.len() <= 63 && matches(&SHORT_NAME, s),
        "k8slongname" => s.len() <= 253 && matches(&LONG_NAME, s),
        _ => false,
    }
}

fn is_hostname(s: &str) -> bool {
    matches(&HOSTNAME, s) && s.len() <= 255 && s.split('.').all(|p| p.len() <= 63)
}

/// `net/url.ParseRequestURI` acceptance: an absolute URI or an absolute path.
fn is_request_uri(s: &str) -> bool {
    if s.is_empty() || s.chars().any(|c| c.is_control() || c == ' ') {
        return false;
    }
    if !valid_percent_escapes(s) {
        return false;
    }
    if s.starts_with('/') {
        return true;
    }
    let Some((scheme, rest)) = s.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    let scheme_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok {
        return false;
    }
    if let Some(authority) = rest.strip_prefix("//") {
        let host = authority.split(['/', '?', '#']).next().unwrap_or("");
        let host = host.rsplit('@').next().unwrap_or("");
        if host.starts_with('[') && !host.contains(']') {
            return false;
        }
    }
    true
}

fn valid_percent_escapes(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if !(b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
            {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

/// An approximation of `net/mail.ParseAddress`: `local@domain`, optionally as `Name <local@domain>`.
fn is_email(s: &str) -> bool {
    let s = s.trim();
    let addr = match (s.find('<'), s.ends_with('>')) {
        (Some(i), true) => &s[i + 1..s.len() - 1],
        (None, false) => s,
        _ => return false,
    };
    let Some((local, domain)) = addr.rsplit_once('@') else {
        return false;
    };
    let atom = |p: &str| {
        !p.is_empty()
            && p.split('.').all(|seg| {
                !seg.is_empty()
                    && seg
                        .chars()
                        .all(|c| c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || !c.is_ascii())
            })
    };
    let local_ok = (local.len() >= 2 && local.starts_with('"') && local.ends_with('"')) || atom(local);
    let domain_ok = (domain.starts_with('[') && domain.ends_with(']')) || atom(domain);
    local_ok && domain_ok
}

/// Parses an IP as Go's `net.ParseIP` does; `sloppy` tolerates leading zeros in IPv4 octets
/// (k8s.io/utils/net's `ParseIPSloppy`).
pub(crate) fn parse_ip(s: &str, sloppy: bool) -> Option<std::net::IpAddr> {
    if let Some(v4) = parse_v4(s, sloppy) {
        return Some(std::net::IpAddr::V4(v4));
    }
    if s.contains(':') && !s.contains('%') {
        if let Ok(v6) = s.parse::<std::net::Ipv6Addr>() {
            return Some(std::net::IpAddr::V6(v6));
        }
        // Go accepts an embedded dotted quad with leading zeros only when sloppy.
        if sloppy && let Some(idx) = s.rfind(':') {
            let (head, tail) = s.split_at(idx + 1);
            if let Some(v4) = parse_v4(tail, true) {
                let rebuilt = format!("{head}{v4}");
                if let Ok(v6) = rebuilt.parse::<std::net::Ipv6Addr>() {
                    return Some(std::net::IpAddr::V6(v6));
                }
            }
        }
    }
    None
}

fn parse_v4(s: &str, sloppy: bool) -> Option<std::net::Ipv4Addr> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() != 4 {
        return None;
    }
    let mut octets = [0u8; 4];
    for (i, p) in parts.iter().enumerate() {
        if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        if !sloppy && p.len() > 1 && p.starts_with('0') {
            return None;
        }
        octets[i] = p.parse::<u16>().ok().filter(|n| *n <= 255)? as u8;
    }
    Some(std::net::Ipv4Addr::from(octets))
}

fn is_cidr(s: &str) -> bool {
    let Some((ip, prefix)) = s.split_once('/') else {
        return false;
    };
    let Some(addr) = parse_ip(ip, true) else {
        return false;
    };
    if prefix.is_empty() || prefix.len() > 3 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let Ok(bits) = prefix.parse::<u32>() else {
        return false;
    };
    let max = if addr.is_ipv4() && !ip.contains(':') {
        32
    } else {
        128
    };
    bits <= max
}

/// `net.ParseMAC`: 6, 8 or 20 octets separated by `:` or `-`, or dotted groups of four hex digits.
fn is_mac(s: &str) -> bool {
    let hex = |p: &str, n: usize| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit());
    for sep in [':', '-'] {
        if s.contains(sep) {
            let parts: Vec<&str> = s.split(sep).collect();
            return matches!(parts.len(), 6 | 8 | 20) && parts.iter().all(|p| hex(p, 2));
        }
    }
    if s.contains('.') {
        let parts: Vec<&str> = s.split('.').collect();
        return matches!(parts.len(), 3 | 4 | 10) && parts.iter().all(|p| hex(p, 4));
    }
    false
}

fn is_isbn(s: &str, version: u32) -> bool {
    let sanitized: String = s.chars().filter(|c| !c.is_whitespace() && *c != '-').collect();
    let b = sanitized.as_bytes();
    if version == 10 {
        let shape =
            b.len() == 10 && b[..9].iter().all(u8::is_ascii_digit) && (b[9].is_ascii_digit() || b[9] == b'X');
        if !shape {
            return false;
        }
        let mut sum: u32 = 0;
        for (i, d) in b[..9].iter().enumerate() {
            sum += (i as u32 + 1) * u32::from(d - b'0');
        }
        sum += if b[9] == b'X' {
            100
        } else {
            10 * u32::from(b[9] - b'0')
        };
        sum.is_multiple_of(11)
    } else {
        if b.len() != 13 || !b.iter().all(u8::is_ascii_digit) {
            return false;
        }
        let mut sum: u32 = 0;
        for (i, d) in b[..12].iter().enumerate() {
            let w = if i % 2 == 0 { 1 } else { 3 };
            sum += w * u32::from(d - b'0');
        }
        (10 - sum % 10) % 10 == u32::from(b[12] - b'0')
    }
}

fn is_credit_card(s: &str) -> bool {
    let digits: String = s.chars().filter(char::is_ascii_digit).collect();
    if !matches(&CREDIT_CARD, &digits) {
        return false;
    }
    let mut sum = 0u32;
    let mut double = false;
    for d in digits.bytes().rev() {
        let mut n = u32::from(d - b'0');
        if double {
            n *= 2;
            if n >= 10 {
                n = n % 10 + 1;
            }
        }
        sum += n;
        double = !double;
    }
    sum.is_multiple_of(10)
}

/// `time.Parse("2006-01-02", s)`.
pub(crate) fn parse_date(s: &str) -> Option<(i32, u32, u32)> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = s.get(r)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    let year = num(0..4)? as i32;
    let month = num(5..7)?;
    let day = num(8..10)?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    Some((year, month, day))
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

/// strfmt's `IsDateTime`: a full date, a `t`, then a time with a zone, compared textually.
fn is_date_time(s: &str) -> bool {
    if s.len() < 4 {
        return false;
    }
    let lower = s.to_lowercase();
    let parts: Vec<&str> = lower.split('t').collect();
    if parts.len() < 2 || parse_date(parts[0]).is_none() {
        return false;
    }
    let Some(caps) = DATE_TIME_TAIL.as_ref().and_then(|r| r.captures(parts[1])) else {
        return false;
    };
    let get = |i: usize| caps.get(i).map_or("", |m| m.as_str());
    get(1) <= "23" && get(2) <= "59" && get(3) <= "59"
}

/// strfmt's `ParseDuration`: Go's `time.ParseDuration`, falling back to a Scala-like
/// `<n> <unit>` syntax. Returns nanoseconds.
pub(crate) fn parse_duration(s: &str) -> Option<i128> {
    if let Some(ns) = go_duration(s) {
        return Some(ns);
    }
    const UNITS: &[(&[&str], i128)] = &[
        (&["ns", "nano"], 1),
        (&["us", "µs", "micro"], 1_000),
        (&["ms", "milli"], 1_000_000),
        (&["s", "sec"], 1_000_000_000),
        (&["m", "min"], 60_000_000_000),
        (&["h", "hr", "hour"], 3_600_000_000_000),
        (&["d", "day"], 86_400_000_000_000),
        (&["w", "wk", "week"], 604_800_000_000_000),
    ];
    let re = SCALA_DURATION.as_ref()?;
    let mut total: i128 = 0;
    let mut ok = false;
    for caps in re.captures_iter(s) {
        let factor: i128 = caps.get(2)?.as_str().parse().ok()?;
        let unit = caps.get(3)?.as_str().trim().to_lowercase();
        for (variants, mult) in UNITS {
            let last = variants.len() - 1;
            for (i, v) in variants.iter().enumerate() {
                if (i == last && unit.starts_with(v)) || unit.eq_ignore_ascii_case(v) {
                    ok = true;
                    total += factor * mult;
                }
            }
        }
    }
    ok.then_some(total)
}

fn go_duration(s: &str) -> Option<i128> {
    if s == "0" || s == "+0" || s == "-0" {
        return Some(0);
    }
    if !matches(&GO_DURATION, s) {
        return None;
    }
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_end];
        rest = &rest[unit_end..];
        let mult = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 6e10,
            "h" => 3.6e12,
            _ => return None,
        };
        total += number * mult;
    }
    if total > 9.223_372_036_854_776e18 {
        return None;
    }
    Some(if neg { -(total as i128) } else { total as i128 })
}
