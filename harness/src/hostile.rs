//! Hostile values for the robustness pass ([`crate::robustness`]): what an
//! attacker types into every field. Ordinary values come from the `fake`
//! crate; the hostile ones are injection strings, bidirectional and control
//! characters, huge values, malformed JWTs and redirect-URI tricks.
//!
//! Every request of a pass draws from a generator of its own, seeded by the
//! pass's seed and the request's number ([`rng`]), so any one request is
//! reproduced from the two numbers a finding prints.
//!
//! Nothing here names a host that needs DNS: the redirect-URI tricks use
//! loopback addresses only (127.0.0.2 and `[::1]`, which no target is told
//! to trust).

use fake::faker::internet::en::SafeEmail;
use fake::faker::lorem::en::Word;
use fake::faker::name::en::Name;
use fake::rand::rngs::StdRng;
use fake::rand::{RngExt, SeedableRng};
use fake::Fake;

/// The generator of request `index` of a pass seeded with `seed`.
pub fn rng(seed: u64, index: usize) -> StdRng {
    StdRng::seed_from_u64(seed ^ (index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// The text that marks request `index`'s payloads, so a reflection or an
/// injected header is traced to the request that planted it.
pub fn marker(index: usize) -> String {
    format!("conform{index}x")
}

/// The markup payloads of request `index`: if any comes back as is in an
/// HTML answer, the target reflected it unescaped.
pub fn markup(index: usize) -> [String; 3] {
    let m = marker(index);
    [
        format!("<script>{m}()</script>"),
        format!("\"><svg onload={m}()>"),
        format!("<img src=x onerror={m}()>"),
    ]
}

/// The header name a CRLF payload tries to inject into an answer.
pub const INJECTED_HEADER: &str = "x-conform-injected";

/// The kinds of hostile value, named in findings.
pub const KINDS: [&str; 12] = [
    "ordinary",
    "markup",
    "template",
    "bidi",
    "control",
    "header-injection",
    "huge",
    "unicode",
    "number",
    "empty",
    "jwt",
    "redirect-uri",
];

/// One hostile value for request `index`, and the kind it is.
pub fn value(rng: &mut StdRng, index: usize) -> (String, &'static str) {
    let kind = KINDS[rng.random_range(0..KINDS.len())];
    let value = match kind {
        "ordinary" => match rng.random_range(0..3) {
            0 => Name().fake_with_rng(rng),
            1 => SafeEmail().fake_with_rng(rng),
            _ => Word().fake_with_rng(rng),
        },
        "markup" => markup(index)[rng.random_range(0..3)].clone(),
        "template" => pick(
            rng,
            &[
                "{{7*7}}",
                "${7*7}",
                "<%= 7*7 %>",
                "' OR '1'='1' --",
                "\"; DROP TABLE clients; --",
                "../../../../etc/passwd",
                "..%2f..%2f..%2fetc%2fpasswd",
                "%00",
                "a\0b",
                "*)(uid=*))(|(uid=*",
            ],
        ),
        "bidi" => {
            let name: String = Name().fake_with_rng(rng);
            let mark = pick(
                rng,
                &["\u{202E}", "\u{202D}", "\u{2066}", "\u{2067}", "\u{200F}"],
            );
            format!("{mark}{name}\u{202C}exe.pdf")
        }
        "control" => pick(
            rng,
            &[
                "\u{1b}[2J\u{1b}[31m",
                "\r\n\r\n",
                "\t\u{b}\u{c}",
                "\u{7f}\u{8}",
                "\u{85}\u{2028}\u{2029}",
            ],
        ),
        "header-injection" => format!("x\r\n{INJECTED_HEADER}: {}", marker(index)),
        "huge" => {
            let word: String = Word().fake_with_rng(rng);
            let len = rng.random_range(2_048..65_536);
            let mut huge = word.repeat(len / word.len().max(1) + 1);
            huge.truncate(len);
            // Huge values carry the request's markup too: a page that cuts
            // them must still escape what it keeps.
            format!("{}{huge}", markup(index)[0])
        }
        "unicode" => pick(
            rng,
            &[
                "👩\u{200d}💻🔑",
                "\u{FEFF}admin",
                "＜script＞alert(1)＜/script＞",
                "ａｄｍｉｎ",
                "e\u{301}\u{301}\u{301}\u{301}\u{301}\u{301}\u{301}\u{301}",
                "\u{FFFD}\u{FFFF}",
                "İstanbul ß ﬁ",
            ],
        ),
        "number" => pick(
            rng,
            &[
                "-1",
                "0",
                "1e309",
                "NaN",
                "99999999999999999999999999",
                "0x7fffffff",
                "1.5",
            ],
        ),
        "empty" => pick(rng, &["", " ", "\"\"", "null", "[]", "{}"]),
        "jwt" => malformed_jwt(rng, index),
        _ => redirect_uri(rng, index),
    };
    (value, kind)
}

/// A JWT that must be refused: `alg` `none`, bad base64, wrong segment
/// counts, a header that is not JSON, huge segments.
pub fn malformed_jwt(rng: &mut StdRng, index: usize) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let b64 = |s: &str| URL_SAFE_NO_PAD.encode(s);
    let claims = b64(&format!(
        r#"{{"sub":"admin","iss":"{m}","aud":"{m}","exp":9999999999,"scope":"admin"}}"#,
        m = marker(index)
    ));
    match rng.random_range(0..8) {
        0 => format!("{}.{claims}.", b64(r#"{"alg":"none","typ":"JWT"}"#)),
        1 => format!(
            "{}.{claims}.c2lnbmF0dXJl",
            b64(r#"{"alg":"HS256","typ":"at+jwt"}"#)
        ),
        2 => format!("{}.{claims}", b64(r#"{"alg":"ES256"}"#)),
        3 => "eyJ.eyJ.eyJ".to_owned(),
        4 => format!("{}.{claims}.!!!", b64("not json")),
        5 => format!(
            "{}.{claims}.AAAA",
            b64(&format!(
                r#"{{"alg":"RS256","kid":"{}"}}"#,
                markup(index)[0]
            ))
        ),
        6 => format!(
            "{}.{}.{}",
            "A".repeat(9_000),
            "B".repeat(9_000),
            "C".repeat(9_000)
        ),
        _ => ".....".to_owned(),
    }
}

/// A redirect URI no server may accept: script and data schemes, userinfo
/// tricks, fragments, relative references, other loopback hosts.
pub fn redirect_uri(rng: &mut StdRng, index: usize) -> String {
    let m = marker(index);
    match rng.random_range(0..9) {
        0 => format!("javascript:{m}()"),
        1 => format!("data:text/html,<script>{m}()</script>"),
        2 => "https://127.0.0.1@127.0.0.2/callback".to_owned(),
        3 => "http://127.0.0.2/callback#fragment".to_owned(),
        4 => "//127.0.0.2/callback".to_owned(),
        5 => "http://[::1]:9/callback".to_owned(),
        6 => "http://127.0.0.1/callback/../../admin".to_owned(),
        7 => format!("http://127.0.0.1/callback?x=%0d%0a{INJECTED_HEADER}:{m}"),
        _ => format!("vbscript:{m}"),
    }
}

/// Nested JSON arrays `depth` deep: a parser without a depth limit recurses.
pub fn nested_json(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

/// A hostile parameter name (names reach logs and error pages as values do).
pub fn parameter_name(rng: &mut StdRng, index: usize) -> String {
    match rng.random_range(0..5) {
        0 => markup(index)[1].clone(),
        1 => "__proto__".to_owned(),
        2 => "constructor[prototype][admin]".to_owned(),
        3 => "a".repeat(4_096),
        _ => Word().fake_with_rng(rng),
    }
}

fn pick(rng: &mut StdRng, choices: &[&str]) -> String {
    choices[rng.random_range(0..choices.len())].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_reproduced_from_its_seed_and_number() {
        let draw = |seed, index| {
            let mut r = rng(seed, index);
            (0..20).map(|_| value(&mut r, index).0).collect::<Vec<_>>()
        };
        assert_eq!(draw(7, 3), draw(7, 3));
        assert_ne!(draw(7, 3), draw(7, 4));
        assert_ne!(draw(7, 3), draw(8, 3));
    }

    #[test]
    fn every_kind_is_drawn_and_redirect_tricks_stay_on_loopback() {
        let mut seen = std::collections::BTreeSet::new();
        let mut r = rng(1, 0);
        for i in 0..2_000 {
            seen.insert(value(&mut r, i).1);
            let uri = redirect_uri(&mut r, i);
            assert!(
                !uri.contains("://") || uri.contains("127.0.0.") || uri.contains("[::1]"),
                "{uri} names a host off loopback"
            );
        }
        assert_eq!(seen.len(), KINDS.len());
    }
}
