//! Go `regexp` (RE2) patterns on top of the `regex` crate: the syntax checks and error texts of
//! Go's parser for the mistakes people actually make, and a translation of the Perl classes,
//! which are ASCII-only in Go but Unicode-aware in `regex`.

use regex::Regex;

/// Compiles a CRD `pattern` with Go semantics, or returns Go's error text
/// (`error parsing regexp: missing closing ): ...`).
pub(crate) fn compile(pattern: &str) -> Result<Regex, String> {
    let translated =
        translate(pattern).map_err(|(code, expr)| format!("error parsing regexp: {code}: `{expr}`"))?;
    Regex::new(&translated).map_err(|e| {
        let detail = e.to_string();
        let code = if detail.contains("range") {
            "invalid character class range"
        } else if detail.contains("exceeds size limit") {
            "expression too large"
        } else {
            "invalid or unsupported Perl syntax"
        };
        format!("error parsing regexp: {code}: `{pattern}`")
    })
}

const DIGIT: &str = "0-9";
const WORD: &str = "0-9A-Za-z_";
const SPACE: &str = r"\t\n\f\r ";

/// The previous atom, for repetition checks.
#[derive(PartialEq, Clone, Copy)]
enum Prev {
    Nothing,
    Atom,
    Repeat,
    /// A repetition already made non-greedy with `?`.
    Lazy,
}

type GoErr = (&'static str, String);

fn translate(p: &str) -> Result<String, GoErr> {
    let chars: Vec<char> = p.chars().collect();
    let mut out = String::with_capacity(p.len() + 8);
    let mut depth = 0usize;
    let mut prev = Prev::Nothing;
    let mut last_op = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' => {
                let (text, used) = escape(&chars, i, false)?;
                out.push_str(&text);
                i += used;
                prev = Prev::Atom;
            }
            '[' => {
                let (text, used) = class(&chars, i)?;
                out.push_str(&text);
                i += used;
                prev = Prev::Atom;
            }
            '(' => {
                let used = group_open(&chars, i)?;
                let text: String = chars[i..i + used].iter().collect();
                out.push_str(&text);
                i += used;
                depth += 1;
                prev = Prev::Nothing;
                // A bare flag group like `(?i)` closes itself.
                if text.starts_with("(?") && text.ends_with(')') {
                    depth -= 1;
                }
            }
            ')' => {
                if depth == 0 {
                    return Err(("unexpected )", p.to_string()));
                }
                depth -= 1;
                out.push(')');
                i += 1;
                prev = Prev::Atom;
            }
            '|' => {
                out.push('|');
                i += 1;
                prev = Prev::Nothing;
            }
            '*' | '+' | '?' => {
                let op = c.to_string();
                match prev {
                    Prev::Nothing => return Err(("missing argument to repetition operator", op)),
                    Prev::Repeat if c == '?' => prev = Prev::Lazy,
                    Prev::Repeat | Prev::Lazy => {
                        return Err(("invalid nested repetition operator", format!("{last_op}{op}")));
                    }
                    Prev::Atom => prev = Prev::Repeat,
                }
                last_op = if prev == Prev::Lazy {
                    format!("{last_op}?")
                } else {
                    op
                };
                out.push(c);
                i += 1;
            }
            '{' => match repeat(&chars, i) {
                Some((text, valid)) => {
                    if !valid {
                        return Err(("invalid repeat count", text));
                    }
                    match prev {
                        Prev::Nothing => return Err(("missing argument to repetition operator", text)),
                        Prev::Repeat | Prev::Lazy => {
                            return Err(("invalid nested repetition operator", format!("{last_op}{text}")));
                        }
                        Prev::Atom => prev = Prev::Repeat,
                    }
                    out.push_str(&text);
                    i += text.chars().count();
                    last_op = text;
                }
                None => {
                    out.push_str("\\{");
                    i += 1;
                    prev = Prev::Atom;
                }
            },
            '}' => {
                out.push_str("\\}");
                i += 1;
                prev = Prev::Atom;
            }
            '^' | '$' => {
                out.push(c);
                i += 1;
                prev = Prev::Atom;
            }
            _ => {
                out.push(c);
                i += 1;
                prev = Prev::Atom;
            }
        }
    }
    if depth > 0 {
        return Err(("missing closing )", p.to_string()));
    }
    Ok(out)
}

/// A counted repetition at `i`: its text and whether the counts are acceptable to Go.
fn repeat(chars: &[char], i: usize) -> Option<(String, bool)> {
    let end = chars[i..].iter().position(|c| *c == '}')? + i;
    let inner: String = chars[i + 1..end].iter().collect();
    let text: String = chars[i..=end].iter().collect();
    let (lo, hi) = match inner.split_once(',') {
        Some((lo, hi)) => (lo.to_string(), Some(hi.to_string())),
        None => (inner.clone(), None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(&lo) || hi.as_deref().is_some_and(|h| !h.is_empty() && !digits(h)) {
        return None;
    }
    let lo_n: u64 = lo.parse().unwrap_or(u64::MAX);
    let hi_n: Option<u64> = hi
        .as_deref()
        .filter(|h| !h.is_empty())
        .map(|h| h.parse().unwrap_or(u64::MAX));
    let valid = lo_n <= 1000 && hi_n.is_none_or(|h| h <= 1000 && h >= lo_n);
    Some((text, valid))
}

/// Validates the opening of a group at `i` and returns how many chars it spans.
fn group_open(chars: &[char], i: usize) -> Result<usize, GoErr> {
    if chars.get(i + 1) != Some(&'?') {
        return Ok(1);
    }
    let rest: String = chars[i..].iter().collect();
    let named = if rest.starts_with("(?P<") {
        Some(4)
    } else if rest.starts_with("(?<") && !rest.starts_with("(?<=") && !rest.starts_with("(?<!") {
        Some(3)
    } else {
        None
    };
    if let Some(skip) = named {
        let Some(close) = chars[i + skip..].iter().position(|c| *c == '>') else {
            return Err(("invalid named capture", rest));
        };
        let name: String = chars[i + skip..i + skip + close].iter().collect();
        let text: String = chars[i..i + skip + close + 1].iter().collect();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(("invalid named capture", text));
        }
        return Ok(skip + close + 1);
    }
    let mut j = i + 2;
    while let Some(&c) = chars.get(j) {
        match c {
            'i' | 'm' | 's' | 'U' | '-' => j += 1,
            ':' | ')' => {
                if j == i + 2 && c == ')' {
                    return Err(("missing argument to repetition operator", "?".into()));
                }
                return Ok(j - i + 1);
            }
            _ => {
                let text: String = chars[i..=j].iter().collect();
                return Err(("invalid or unsupported Perl syntax", text));
            }
        }
    }
    Err(("missing closing )", chars.iter().collect()))
}

/// Translates the escape at `i`; returns the replacement and the chars consumed.
fn escape(chars: &[char], i: usize, in_class: bool) -> Result<(String, usize), GoErr> {
    let Some(&c) = chars.get(i + 1) else {
        return Err(("trailing backslash at end of expression", String::new()));
    };
    // A negated class nests inside a bracket, which `regex` accepts and Go never needs.
    let neg = |set: &str| format!("[^{set}]");
    let pos = |set: &str| {
        if in_class {
            set.to_string()
        } else {
            format!("[{set}]")
        }
    };
    let text = match c {
        'd' => pos(DIGIT),
        'D' => neg(DIGIT),
        'w' => pos(WORD),
        'W' => neg(WORD),
        's' => pos(SPACE),
        'S' => neg(SPACE),
        'b' if !in_class => r"(?-u:\b)".to_string(),
        'B' if !in_class => r"(?-u:\B)".to_string(),
        'A' | 'z' if !in_class => format!("\\{c}"),
        'a' | 'f' | 't' | 'n' | 'r' | 'v' => format!("\\{c}"),
        'p' | 'P' => {
            if chars.get(i + 2) == Some(&'{') {
                let Some(close) = chars[i + 2..].iter().position(|ch| *ch == '}') else {
                    let text: String = chars[i..].iter().collect();
                    return Err(("invalid character class range", text));
                };
                let text: String = chars[i..i + 3 + close].iter().collect();
                return Ok((text, 3 + close));
            }
            let Some(&name) = chars.get(i + 2) else {
                return Err(("invalid character class range", format!("\\{c}")));
            };
            return Ok((format!("\\{c}{name}"), 3));
        }
        'x' => {
            if chars.get(i + 2) == Some(&'{') {
                let close = chars[i + 2..].iter().position(|ch| *ch == '}').unwrap_or(0);
                let text: String = chars[i..i + 3 + close].iter().collect();
                return Ok((text, 3 + close));
            }
            let text: String = chars[i..(i + 4).min(chars.len())].iter().collect();
            return Ok((text.clone(), text.chars().count()));
        }
        'Q' => {
            let rest: String = chars[i + 2..].iter().collect();
            let (lit, used) = match rest.find("\\E") {
                Some(end) => (rest[..end].to_string(), 2 + rest[..end].chars().count() + 2),
                None => (rest.clone(), 2 + rest.chars().count()),
            };
            return Ok((regex::escape(&lit), used));
        }
        c if c.is_ascii_punctuation() => format!("\\{c}"),
        c => return Err(("invalid escape sequence", format!("\\{c}"))),
    };
    Ok((text, 2))
}

/// Translates a bracketed class starting at `i`.
fn class(chars: &[char], i: usize) -> Result<(String, usize), GoErr> {
    let mut out = String::from("[");
    let mut j = i + 1;
    if chars.get(j) == Some(&'^') {
        out.push('^');
        j += 1;
    }
    // A leading `]` is a literal in Go.
    if chars.get(j) == Some(&']') {
        out.push_str("\\]");
        j += 1;
    }
    while j < chars.len() {
        let c = chars[j];
        match c {
            ']' => {
                out.push(']');
                return Ok((out, j - i + 1));
            }
            '\\' => {
                let (text, used) = escape(chars, j, true)?;
                out.push_str(&text);
                j += used;
            }
            '[' if chars.get(j + 1) == Some(&':') => {
                let rest: String = chars[j..].iter().collect();
                match rest.find(":]") {
                    Some(end) => {
                        out.push_str(&rest[..end + 2]);
                        j += rest[..end + 2].chars().count();
                    }
                    None => {
                        out.push_str("\\[");
                        j += 1;
                    }
                }
            }
            '[' | '&' | '~' => {
                // `regex` gives these class-set meaning; Go treats them literally.
                out.push('\\');
                out.push(c);
                j += 1;
            }
            '-' if chars.get(j + 1) == Some(&'-') => {
                out.push_str("\\-");
                j += 1;
            }
            _ => {
                out.push(c);
                j += 1;
            }
        }
    }
    Err(("missing closing ]", chars[i..].iter().collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_errors() {
        assert_eq!(
            compile("(abc").unwrap_err(),
            "error parsing regexp: missing closing ): `(abc`"
        );
        assert_eq!(
            compile("abc)").unwrap_err(),
            "error parsing regexp: unexpected ): `abc)`"
        );
        assert_eq!(
            compile("[a-z").unwrap_err(),
            "error parsing regexp: missing closing ]: `[a-z`"
        );
        assert_eq!(
            compile("*a").unwrap_err(),
            "error parsing regexp: missing argument to repetition operator: `*`"
        );
        assert_eq!(
            compile("a**").unwrap_err(),
            "error parsing regexp: invalid nested repetition operator: `**`"
        );
        assert_eq!(
            compile(r"\q").unwrap_err(),
            "error parsing regexp: invalid escape sequence: `\\q`"
        );
        assert_eq!(
            compile("(?=a)").unwrap_err(),
            "error parsing regexp: invalid or unsupported Perl syntax: `(?=`"
        );
    }

    #[test]
    fn perl_classes_are_ascii() {
        let re = compile(r"^\d+$").unwrap();
        assert!(re.is_match("123"));
        assert!(!re.is_match("١٢٣"));
        assert!(compile(r"^[\w.-]+{x$").unwrap().is_match("a.b{x"));
        assert!(compile(r"^a*?b$").unwrap().is_match("aab"));
        assert!(compile(r"(?i)^abc$").unwrap().is_match("ABC"));
    }
}
