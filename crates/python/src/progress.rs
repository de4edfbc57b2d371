//! The lines `verbose()` prints: one per run-log record, from the record's
//! `roomkit_graph` fields, with every control or format character escaped
//! (what a line shows comes from outside: a customer's text, a model's
//! answer, an error; a terminal would obey an escape sequence in it).

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyString};

/// How long an excerpt of a text may be, in characters.
const EXCERPT: usize = 160;

const GREEN: &str = "32";
const YELLOW: &str = "33";
const RED: &str = "31";
const CYAN: &str = "36";
const DIM: &str = "2";

/// `str(fields[key])`; a missing field is a `KeyError`, as a record that
/// lacks what its event needs is a bug of whoever logged it.
fn text(fields: &Bound<'_, PyDict>, key: &str) -> PyResult<String> {
    match fields.get_item(key)? {
        Some(value) => Ok(value.str()?.to_string()),
        None => Err(pyo3::exceptions::PyKeyError::new_err(key.to_owned())),
    }
}

/// `fields[key]` unless absent or None.
fn get<'py>(fields: &Bound<'py, PyDict>, key: &str) -> PyResult<Option<Bound<'py, PyAny>>> {
    Ok(fields.get_item(key)?.filter(|value| !value.is_none()))
}

fn seconds(fields: &Bound<'_, PyDict>) -> PyResult<String> {
    let value: f64 = match fields.get_item("seconds")? {
        Some(value) => value.extract()?,
        None => return Err(pyo3::exceptions::PyKeyError::new_err("seconds")),
    };
    Ok(format!("{value:.1}"))
}

/// `text` on one line (runs of whitespace as one space), cut to [`EXCERPT`] characters.
fn excerpt(text: &str) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= EXCERPT {
        return flat;
    }
    let mut cut: String = flat.chars().take(EXCERPT - 1).collect();
    cut.push('…');
    cut
}

/// `n` with a comma between thousands, as Python's `{n:,}`.
fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

fn count(value: Option<Bound<'_, PyAny>>) -> PyResult<i64> {
    value.map_or(Ok(0), |value| value.extract())
}

/// ` · 512 → 640 tokens (12 from cache)`, or nothing without token counts.
fn tokens(fields: &Bound<'_, PyDict>) -> PyResult<String> {
    let (tokens_in, tokens_out) = (get(fields, "tokens_in")?, get(fields, "tokens_out")?);
    if tokens_in.is_none() && tokens_out.is_none() {
        return Ok(String::new());
    }
    let cached = match get(fields, "tokens_cached")? {
        Some(cached) if cached.is_truthy()? => format!(" ({} from cache)", thousands(cached.extract()?)),
        _ => String::new(),
    };
    Ok(format!(" · {} → {} tokens{cached}", thousands(count(tokens_in)?), thousands(count(tokens_out)?)))
}

/// ` · tools: search ×2, fetch`, or nothing without tools.
fn tools(fields: &Bound<'_, PyDict>) -> PyResult<String> {
    let mut counts: Vec<(String, usize)> = Vec::new();
    if let Some(called) = get(fields, "tools")? {
        for name in called.try_iter()? {
            let name = name?.str()?.to_string();
            match counts.iter_mut().find(|(known, _)| *known == name) {
                Some((_, n)) => *n += 1,
                None => counts.push((name, 1)),
            }
        }
    }
    if counts.is_empty() {
        return Ok(String::new());
    }
    let named: Vec<String> =
        counts.into_iter().map(|(name, n)| if n == 1 { name } else { format!("{name} ×{n}") }).collect();
    Ok(format!(" · tools: {}", named.join(", ")))
}

/// The line for a record's fields and the colour of its first mark; `None`
/// for events that print nothing.
#[pyfunction]
pub(crate) fn progress_line(fields: &Bound<'_, PyDict>) -> PyResult<Option<(String, Option<&'static str>)>> {
    let event = match fields.get_item("event")? {
        Some(event) => event.str()?.to_string(),
        None => return Ok(None),
    };
    let line = match event.as_str() {
        "run.start" => ("▶ run started".to_owned(), Some(CYAN)),
        "node.start" => (format!("▶ {} ({})", text(fields, "node")?, text(fields, "type")?), Some(CYAN)),
        "agent.start" => {
            let role = match get(fields, "role")? {
                Some(role) if role.is_truthy()? => format!(" · {}", role.str()?),
                _ => String::new(),
            };
            (format!("  {}{role} · working…", text(fields, "agent")?), None)
        }
        "agent.prompt" => (format!("  asked: {}", excerpt(&text(fields, "text")?)), Some(DIM)),
        "agent.done" => {
            let status = match get(fields, "status")? {
                Some(status) if status.str()?.to_str()? == "completed" => String::new(),
                status => format!(
                    " · {}",
                    status.map_or(Ok("None".to_owned()), |s| s.str().map(|s| s.to_string()))?
                ),
            };
            let line = format!(
                "  {} answered · {} s{}{}{status}",
                text(fields, "agent")?,
                seconds(fields)?,
                tokens(fields)?,
                tools(fields)?
            );
            (line, None)
        }
        "agent.answer" => (format!("  answer: {}", excerpt(&text(fields, "text")?)), Some(DIM)),
        "message.sent" => (format!("  sent into room {}", text(fields, "room")?), None),
        "question.sent" => (format!("  asked in room {}", text(fields, "room")?), None),
        "message.text" => (format!("  text: {}", excerpt(&text(fields, "text")?)), Some(DIM)),
        "node.complete" => (format!("✓ {} · {} s", text(fields, "node")?, seconds(fields)?), Some(GREEN)),
        "node.wait" => (format!("⏸ {} · waiting for an answer", text(fields, "node")?), Some(YELLOW)),
        "node.resume" => (format!("↻ {} · answered, the run goes on", text(fields, "node")?), Some(CYAN)),
        "node.fail" => {
            let error =
                get(fields, "error")?.map_or(Ok("None".to_owned()), |e| e.str().map(|e| e.to_string()))?;
            (format!("✗ {} · {error}", text(fields, "node")?), Some(RED))
        }
        "run.complete" => {
            let took = match get(fields, "seconds")? {
                Some(_) => format!(" · {} s", seconds(fields)?),
                None => String::new(),
            };
            (format!("✓ run done{took} · {} steps", text(fields, "steps")?), Some(GREEN))
        }
        _ => return Ok(None),
    };
    Ok(Some((printable(fields.py(), &line.0)?, line.1)))
}

/// `text` with every control or format character (Unicode category C)
/// written as an escape (`\x1b`, `\u202e`).
#[pyfunction]
pub(crate) fn printable(py: Python<'_>, text: &str) -> PyResult<String> {
    static CATEGORY: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let hidden = if c.is_ascii() {
            c.is_ascii_control()
        } else {
            let category = CATEGORY
                .import(py, "unicodedata", "category")?
                .call1((PyString::new(py, c.encode_utf8(&mut [0; 4])),))?;
            category.str()?.to_str()?.starts_with('C')
        };
        if !hidden {
            out.push(c);
            continue;
        }
        match c {
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x100 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    Ok(out)
}
