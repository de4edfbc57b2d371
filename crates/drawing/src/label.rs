//! Text in the picture: an edge's condition in words, text cut to fit, and how
//! wide text is drawn.

use roomkit_graph::{Condition, Op};
use serde_json::Value;

/// The longest edge label, in characters; the whole condition shows on hover.
pub const MAX_LABEL: usize = 24;

/// The size of a node's id, in pixels.
pub(crate) const ID_FONT: f64 = 13.0;
/// The size of a node's second line and of edge labels.
pub(crate) const KIND_FONT: f64 = 11.0;

/// A condition in words: `severity = critical`, `otherwise`, `on error`;
/// none for an edge written `"condition": {}` (taken always).
pub(crate) fn condition(condition: &Condition) -> Option<String> {
    Some(match condition {
        Condition::Field(field) => {
            let path = field.path.as_str();
            let name = path.rsplit('.').next().unwrap_or(path);
            match (&field.op, &field.value) {
                (Op::Exists, _) => format!("{name} exists"),
                (op, value) => format!("{name} {} {}", op_word(op), value_text(value)),
            }
        }
        Condition::All(all) => join(all, " and ", "always"),
        Condition::Any(any) => join(any, " or ", "never"),
        Condition::Not(not) => match not.first().and_then(self::condition) {
            Some(inner) => format!("not ({inner})"),
            None => "never".to_owned(),
        },
        Condition::Otherwise => "otherwise".to_owned(),
        Condition::Error => "on error".to_owned(),
        Condition::Unknown(raw) => match raw.get("type").and_then(Value::as_str) {
            Some(kind) => format!("unknown {kind}"),
            None => "unknown".to_owned(),
        },
        Condition::Lenient { reading, .. } => return reading.as_deref().and_then(self::condition),
        Condition::Malformed { .. } => "malformed".to_owned(),
    })
}

fn op_word(op: &Op) -> &str {
    match op {
        Op::Eq => "=",
        Op::Neq => "≠",
        Op::Gt => ">",
        Op::Lt => "<",
        Op::NotIn => "not in",
        other => other.as_str(),
    }
}

fn value_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn join(conditions: &[Condition], with: &str, empty: &str) -> String {
    let parts: Vec<String> = conditions.iter().filter_map(condition).collect();
    if parts.is_empty() { empty.to_owned() } else { parts.join(with) }
}

/// `text` cut to at most `max` characters, the cut marked with `…`.
pub(crate) fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// `text` cut so it is drawn at most `width` pixels wide.
pub(crate) fn fit(text: &str, font: f64, bold: bool, width: f64) -> String {
    if text_width(text, font, bold) <= width {
        return text.to_owned();
    }
    let mut used = text_width("…", font, bold);
    let mut cut = String::new();
    for c in text.chars() {
        used += char_width(c, font, bold);
        if used > width {
            break;
        }
        cut.push(c);
    }
    cut.push('…');
    cut
}

/// About how wide `text` is drawn in a sans-serif font of `font` pixels.
pub(crate) fn text_width(text: &str, font: f64, bold: bool) -> f64 {
    text.chars().map(|c| char_width(c, font, bold)).sum()
}

fn char_width(c: char, font: f64, bold: bool) -> f64 {
    let em = match c {
        // Wide scripts (CJK, Hangul, full-width forms) and emoji take a whole em.
        '\u{1100}'..='\u{115F}'
        | '\u{2E80}'..='\u{A4CF}'
        | '\u{AC00}'..='\u{D7A3}'
        | '\u{F900}'..='\u{FAFF}'
        | '\u{FF00}'..='\u{FF60}'
        | '\u{1F300}'..='\u{1FAFF}' => 1.0,
        'i' | 'j' | 'l' | '.' | ',' | ':' | ';' | '\'' | '|' | '!' => 0.3,
        'm' | 'w' | 'M' | 'W' => 0.85,
        c if c.is_uppercase() => 0.68,
        _ => 0.56,
    };
    em * font * if bold { 1.07 } else { 1.0 }
}

#[cfg(test)]
mod tests {
    use roomkit_graph::Condition;

    use super::*;

    #[test]
    fn conditions_read_as_short_words() {
        let said = |c: Condition| condition(&c);
        assert_eq!(
            said(Condition::field("triage.output.severity").equals("critical")).as_deref(),
            Some("severity = critical")
        );
        assert_eq!(said(Condition::field("review.output.score").gt(3)).as_deref(), Some("score > 3"));
        assert_eq!(said(Condition::field("x.output.tags").exists()).as_deref(), Some("tags exists"));
        assert_eq!(said(Condition::otherwise()).as_deref(), Some("otherwise"));
        assert_eq!(said(Condition::error()).as_deref(), Some("on error"));
        let both = Condition::all([
            Condition::field("a.b").equals(1),
            Condition::not(Condition::field("c").equals(true)),
        ]);
        assert_eq!(said(both).as_deref(), Some("b = 1 and not (c = true)"));
        let empty = Condition::from_value(&serde_json::json!({}));
        assert!(matches!(empty, Condition::Lenient { .. }) || said(empty.clone()).is_some());
    }

    #[test]
    fn text_is_cut_to_fit() {
        assert_eq!(shorten("abcdef", 6), "abcdef");
        assert_eq!(shorten("abcdefg", 6), "abcde…");
        let long = "x".repeat(500_000);
        let cut = fit(&long, ID_FONT, true, 200.0);
        assert!(cut.ends_with('…') && text_width(&cut, ID_FONT, true) <= 200.0 + 1e-9, "{}", cut.len());
        assert_eq!(fit("short", ID_FONT, true, 200.0), "short");
    }
}
