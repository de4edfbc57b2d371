//! Templates: `{{path}}` placeholders resolved from a run's context.
//!
//! A placeholder is `{{ path }}` or `{{ path | default(JSON) }}`; a path's
//! segments may hold inner spaces (`{{ steps.form.first name }}`), and `{{}}`,
//! with nothing inside, is plain text. In text, string values go in as they
//! are and every other value as JSON. A string that is one placeholder, with
//! nothing but whitespace around it, resolves to the raw value (objects,
//! numbers and booleans keep their type). Templates are parsed once, when a
//! graph is loaded.

use std::fmt::Write as _;

use serde_json::{Map, Value};

use std::sync::Arc;

use crate::context::{Context, Layout, Path};
use crate::limits::{LimitError, MAX_READ_DEPTH, measure};

/// Why a template could not be resolved.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum TemplateError {
    /// The path leads nowhere and the placeholder has no default.
    #[error("{{{{{path}}}}} names nothing in the context and has no default")]
    Missing {
        /// The placeholder's path.
        path: String,
    },
    /// A filter other than `default`.
    #[error("unknown filter {filter:?} in {placeholder:?}: only default(JSON) is supported")]
    UnknownFilter {
        /// The filter's name.
        filter: String,
        /// The whole placeholder.
        placeholder: String,
    },
    /// What the template resolves to goes past a limit (see
    /// [`Limits::output_bytes`](crate::Limits::output_bytes)); resolving
    /// stopped there.
    #[error("the resolved template {0}")]
    Limit(LimitError),
    /// The placeholder is not `{{ path }}` or `{{ path | default(JSON) }}`.
    #[error("malformed placeholder {placeholder:?}: {reason}")]
    Malformed {
        /// The placeholder as written.
        placeholder: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// One `{{ ... }}` placeholder.
#[derive(Clone, Debug, PartialEq)]
struct Placeholder {
    path: Path,
    default: Option<Box<Value>>,
}

impl Placeholder {
    fn resolve<'a>(&'a self, context: &'a Context) -> Result<&'a Value, TemplateError> {
        context
            .lookup(&self.path)
            .or(self.default.as_deref())
            .ok_or_else(|| TemplateError::Missing { path: self.path.as_str().to_owned() })
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Segment {
    Text(Box<str>),
    Placeholder(Placeholder),
}

/// A parsed text template.
///
/// ```
/// use roomkit_graph::{Context, Template};
/// use serde_json::json;
///
/// let mut context = Context::new("start");
/// context.set_output("triage", json!({"title": "DB down", "tags": ["db"], "score": 7}));
///
/// let text = Template::parse("{{triage.output.title}}: {{ triage.output.tags }}")?;
/// assert_eq!(text.render(&context)?, r#"DB down: ["db"]"#);
///
/// let lone = Template::parse("{{triage.output.score}}")?;
/// assert_eq!(lone.resolve(&context)?, json!(7));
///
/// let fallback = Template::parse(r#"{{triage.output.owner | default("nobody")}}"#)?;
/// assert_eq!(fallback.render(&context)?, "nobody");
/// # Ok::<(), roomkit_graph::TemplateError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    segments: Box<[Segment]>,
    /// The length of the literal text, to size the rendered string.
    text_len: usize,
}

impl Template {
    /// Parses a template.
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let mut segments = Vec::new();
        // Where the literal text not yet pushed starts, and where to look for `{{`.
        let mut text_start = 0;
        let mut from = 0;
        while let Some(open) = text[from..].find("{{").map(|i| from + i) {
            let after = &text[open + 2..];
            if after.starts_with("}}") {
                // `{{}}` names nothing: it stays text.
                from = open + 4;
                continue;
            }
            let Some((placeholder, used)) = parse_placeholder(after)? else { break };
            if open > text_start {
                segments.push(Segment::Text(text[text_start..open].into()));
            }
            segments.push(Segment::Placeholder(placeholder));
            text_start = open + 2 + used;
            from = text_start;
        }
        if text_start < text.len() {
            segments.push(Segment::Text(text[text_start..].into()));
        }
        let text_len = segments.iter().map(|s| if let Segment::Text(t) = s { t.len() } else { 0 }).sum();
        Ok(Template { segments: segments.into_boxed_slice(), text_len })
    }

    /// Binds every placeholder's path to its node slot in `layout`.
    pub(crate) fn bind(&mut self, layout: &Arc<Layout>) {
        for segment in self.segments.iter_mut() {
            if let Segment::Placeholder(placeholder) = segment {
                placeholder.path.bind(layout);
            }
        }
    }

    /// Whether the template has no placeholder.
    pub fn is_literal(&self) -> bool {
        !self.segments.iter().any(|s| matches!(s, Segment::Placeholder(_)))
    }

    /// The placeholder, when the template is one placeholder with nothing but
    /// whitespace around it.
    fn lone(&self) -> Option<&Placeholder> {
        let blank = |segment: &Segment| matches!(segment, Segment::Text(text) if text.trim().is_empty());
        let inner = match &*self.segments {
            [first, rest @ ..] if blank(first) => rest,
            all => all,
        };
        match inner {
            [Segment::Placeholder(p)] => Some(p),
            [Segment::Placeholder(p), last] if blank(last) => Some(p),
            _ => None,
        }
    }

    /// Resolves to text: strings go in as they are, other values as JSON.
    pub fn render(&self, context: &Context) -> Result<String, TemplateError> {
        self.render_within(context, usize::MAX)
    }

    /// [`render`](Self::render), stopped with [`TemplateError::Limit`] as soon
    /// as the text goes past `max_bytes`: a template repeating a large value
    /// never builds more than the limit and one value.
    ///
    /// ```
    /// use roomkit_graph::{Context, Template};
    /// use serde_json::json;
    ///
    /// let mut context = Context::new("start");
    /// context.set_output("start", json!({"input": {"text": "x".repeat(100)}}));
    /// let template = Template::parse(&"{{trigger.text}}".repeat(1000))?;
    /// assert!(template.render_within(&context, 1000).is_err());
    /// # Ok::<(), roomkit_graph::TemplateError>(())
    /// ```
    pub fn render_within(&self, context: &Context, max_bytes: usize) -> Result<String, TemplateError> {
        let mut out = String::with_capacity(self.text_len.min(max_bytes) + 16);
        for segment in &self.segments {
            match segment {
                Segment::Text(text) => out.push_str(text),
                Segment::Placeholder(p) => write_value(&mut out, p.resolve(context)?),
            }
            if out.len() > max_bytes {
                return Err(TemplateError::Limit(LimitError::Exceeds { limit: max_bytes }));
            }
        }
        Ok(out)
    }

    /// Resolves to a value: a template that is one placeholder, with nothing but
    /// whitespace around it, gives the raw value; any other template gives text.
    ///
    /// ```
    /// use roomkit_graph::{Context, Template};
    /// use serde_json::json;
    ///
    /// let mut context = Context::new("start");
    /// context.set_output("form", json!({"first name": "Ada", "age": 36}));
    /// assert_eq!(Template::parse("  {{form.output.age}}\n")?.resolve(&context)?, json!(36));
    /// assert_eq!(Template::parse("{{ steps.form.first name }}")?.resolve(&context)?, json!("Ada"));
    /// assert_eq!(Template::parse("{{}} {{form.output.age}}")?.resolve(&context)?, json!("{{}} 36"));
    /// # Ok::<(), roomkit_graph::TemplateError>(())
    /// ```
    pub fn resolve(&self, context: &Context) -> Result<Value, TemplateError> {
        let mut budget = Budget::unlimited();
        self.resolve_within(context, &mut budget)
    }

    /// [`resolve`](Self::resolve), taking what it produces from `budget`.
    fn resolve_within(&self, context: &Context, budget: &mut Budget) -> Result<Value, TemplateError> {
        match self.lone() {
            Some(p) => {
                let value = p.resolve(context)?;
                budget.take(measure(value).bytes)?;
                Ok(value.clone())
            }
            None => {
                let text = self.render_within(context, budget.left)?;
                budget.take(text.len())?;
                Ok(Value::String(text))
            }
        }
    }
}

/// How many bytes (of compact JSON, roughly: text counts its length) resolving
/// may still produce before it goes past the limit it started with.
struct Budget {
    left: usize,
    limit: usize,
}

impl Budget {
    fn unlimited() -> Self {
        Budget { left: usize::MAX, limit: usize::MAX }
    }

    fn new(limit: usize) -> Self {
        Budget { left: limit, limit }
    }

    /// Takes `bytes`, or fails when fewer are left.
    fn take(&mut self, bytes: usize) -> Result<(), TemplateError> {
        self.left = self
            .left
            .checked_sub(bytes)
            .ok_or(TemplateError::Limit(LimitError::Exceeds { limit: self.limit }))?;
        Ok(())
    }
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::String(s) => out.push_str(s),
        other => {
            let _ = write!(out, "{other}");
        }
    }
}

/// Parses the inside of a placeholder (`text` starts right after `{{`).
/// Returns the placeholder and the bytes used up to and including `}}`, or
/// `None` when no `}}` follows (the braces are then plain text).
fn parse_placeholder(text: &str) -> Result<Option<(Placeholder, usize)>, TemplateError> {
    let Some(close) = text.find("}}") else { return Ok(None) };
    let malformed = |placeholder: &str, reason: &str| TemplateError::Malformed {
        placeholder: format!("{{{{{placeholder}}}}}"),
        reason: reason.to_owned(),
    };
    let path_end = text.find(['|', '}']).unwrap_or(text.len());
    // Whitespace around the path is not part of it; inside, it is.
    let path = text[..path_end].trim();
    if path.is_empty() {
        return Err(malformed(&text[..close], "expected a path such as step.output.field"));
    }
    let path = Path::parse(path);
    if !text[path_end..].starts_with('|') {
        if path_end != close {
            return Err(malformed(&text[..close], "unexpected '}' inside the placeholder"));
        }
        return Ok(Some((Placeholder { path, default: None }, close + 2)));
    }
    // `| filter(ARG)`: the argument is JSON and may hold braces and parentheses.
    let after_bar = &text[path_end + 1..];
    let filter_len = after_bar.find(['(', '}']).unwrap_or(after_bar.len());
    let filter = after_bar[..filter_len].trim();
    if filter != "default" {
        return Err(TemplateError::UnknownFilter {
            filter: filter.to_owned(),
            placeholder: format!("{{{{{}}}}}", &text[..close]),
        });
    }
    if !after_bar[filter_len..].starts_with('(') {
        return Err(malformed(&text[..close], "default needs a JSON argument: default(JSON)"));
    }
    let arg_start = path_end + 1 + filter_len + 1;
    let Some(arg_len) = json_argument_len(&text[arg_start..]) else {
        return Err(malformed(&text[..close], "default( is not closed by )"));
    };
    let arg = &text[arg_start..arg_start + arg_len];
    let default: Value = serde_json::from_str(arg)
        .map_err(|e| malformed(&text[..close], &format!("default({arg}) is not JSON: {e}")))?;
    let tail = &text[arg_start + arg_len + 1..];
    let trimmed = tail.trim_start();
    if !trimmed.starts_with("}}") {
        return Err(malformed(&text[..close], "expected }} after default(...)"));
    }
    let used = text.len() - trimmed.len() + 2;
    Ok(Some((Placeholder { path, default: Some(Box::new(default)) }, used)))
}

/// The length of a JSON argument up to its closing `)`, skipping brackets and
/// strings; `None` when it is not closed.
fn json_argument_len(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '[' | '{' | '(' => depth += 1,
            ']' | '}' => depth = depth.checked_sub(1)?,
            ')' if depth == 0 => return Some(i),
            ')' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// A JSON value whose strings are templates: objects and arrays are resolved
/// recursively, strings with placeholders are resolved, everything else is kept.
///
/// ```
/// use roomkit_graph::{Context, ValueTemplate};
/// use serde_json::json;
///
/// let mut context = Context::new("start");
/// context.set_output("extract", json!({"first": "Ada", "meta": {"tier": 1}}));
///
/// let template = ValueTemplate::compile(&json!({
///     "name": "{{extract.output.first}}!",
///     "meta": "{{extract.output.meta}}",
///     "fixed": [1, true],
/// }));
/// assert_eq!(
///     template.resolve(&context)?,
///     json!({"name": "Ada!", "meta": {"tier": 1}, "fixed": [1, true]})
/// );
/// # Ok::<(), roomkit_graph::TemplateError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct ValueTemplate(Compiled);

/// A compiled value: compact, so a graph's templates stay small in memory.
#[derive(Clone, Debug, PartialEq)]
enum Compiled {
    /// A value with no placeholder anywhere inside.
    Literal(Value),
    /// A string with placeholders.
    Text(Template),
    /// A string whose placeholders do not parse: resolving it fails with this error.
    Invalid(Box<TemplateError>),
    /// An array holding placeholders.
    Array(Box<[Compiled]>),
    /// An object holding placeholders.
    Object(Box<[(Box<str>, Compiled)]>),
}

impl ValueTemplate {
    /// Parses every string inside `value`. Strings that do not parse are kept
    /// so the error surfaces when resolved (and in [`ValueTemplate::first_error`]).
    pub fn compile(value: &Value) -> Self {
        ValueTemplate(Compiled::compile(value))
    }

    /// The first parse error inside, with where it is (`a.b[2]`), if any.
    pub fn first_error(&self) -> Option<(String, &TemplateError)> {
        self.0.first_error()
    }

    /// Resolves every placeholder against `context`.
    pub fn resolve(&self, context: &Context) -> Result<Value, TemplateError> {
        self.0.resolve(context, &mut Budget::unlimited())
    }

    /// [`resolve`](Self::resolve), stopped with [`TemplateError::Limit`] as
    /// soon as what it produces goes past `max_bytes`: a template reading a
    /// large value many times never copies it past the limit.
    pub(crate) fn resolve_within(&self, context: &Context, max_bytes: usize) -> Result<Value, TemplateError> {
        self.0.resolve(context, &mut Budget::new(max_bytes))
    }

    /// The text template, rendered within `max_bytes` (see [`Template::render_within`]).
    pub(crate) fn render_within(
        &self,
        context: &Context,
        max_bytes: usize,
    ) -> Option<Result<String, TemplateError>> {
        self.as_text().map(|template| template.render_within(context, max_bytes))
    }

    /// The text template, when the compiled value is a string with placeholders.
    pub(crate) fn as_text(&self) -> Option<&Template> {
        match &self.0 {
            Compiled::Text(template) => Some(template),
            _ => None,
        }
    }

    /// Binds every placeholder's path to its node slot in `layout`.
    pub(crate) fn bind(&mut self, layout: &Arc<Layout>) {
        self.0.bind(layout);
    }
}

impl Compiled {
    /// Compiles `value`, copying each literal part once. Values nested deeper
    /// than JSON text may be (possible only in code) are kept as literals.
    fn compile(value: &Value) -> Self {
        Self::placeholders(value, 0).unwrap_or_else(|| Compiled::Literal(value.clone()))
    }

    /// The compiled value, or `None` when it holds no placeholder (so the
    /// caller keeps it as a literal, copied once at the top of the literal part).
    fn placeholders(value: &Value, level: usize) -> Option<Self> {
        if level > MAX_READ_DEPTH {
            return None;
        }
        let literal = |value: &Value, compiled: Option<Self>| {
            compiled.unwrap_or_else(|| Compiled::Literal(value.clone()))
        };
        match value {
            Value::String(text) if text.contains("{{") => match Template::parse(text) {
                Ok(template) if template.is_literal() => None,
                Ok(template) => Some(Compiled::Text(template)),
                Err(error) => Some(Compiled::Invalid(Box::new(error))),
            },
            Value::Array(items) => {
                let compiled: Vec<_> = items.iter().map(|item| Self::placeholders(item, level + 1)).collect();
                compiled.iter().any(Option::is_some).then(|| {
                    Compiled::Array(items.iter().zip(compiled).map(|(item, c)| literal(item, c)).collect())
                })
            }
            Value::Object(map) => {
                let compiled: Vec<_> = map.values().map(|item| Self::placeholders(item, level + 1)).collect();
                compiled.iter().any(Option::is_some).then(|| {
                    Compiled::Object(
                        map.iter()
                            .zip(compiled)
                            .map(|((key, item), c)| (key.as_str().into(), literal(item, c)))
                            .collect(),
                    )
                })
            }
            _ => None,
        }
    }

    fn bind(&mut self, layout: &Arc<Layout>) {
        match self {
            Compiled::Literal(_) | Compiled::Invalid(_) => {}
            Compiled::Text(template) => template.bind(layout),
            Compiled::Array(items) => items.iter_mut().for_each(|item| item.bind(layout)),
            Compiled::Object(entries) => entries.iter_mut().for_each(|(_, item)| item.bind(layout)),
        }
    }

    fn first_error(&self) -> Option<(String, &TemplateError)> {
        match self {
            Compiled::Literal(_) | Compiled::Text(_) => None,
            Compiled::Invalid(error) => Some((String::new(), error)),
            Compiled::Array(items) => items
                .iter()
                .enumerate()
                .find_map(|(i, item)| item.first_error().map(|(at, e)| (format!("[{i}]{}", dotted(&at)), e))),
            Compiled::Object(entries) => entries.iter().find_map(|(key, item)| {
                item.first_error().map(|(at, e)| (format!("{key}{}", dotted(&at)), e))
            }),
        }
    }

    fn resolve(&self, context: &Context, budget: &mut Budget) -> Result<Value, TemplateError> {
        Ok(match self {
            Compiled::Literal(value) => {
                budget.take(measure(value).bytes)?;
                value.clone()
            }
            Compiled::Text(template) => template.resolve_within(context, budget)?,
            Compiled::Invalid(error) => return Err((**error).clone()),
            Compiled::Array(items) => Value::Array(
                items.iter().map(|item| item.resolve(context, budget)).collect::<Result<_, _>>()?,
            ),
            Compiled::Object(entries) => {
                let mut map = Map::with_capacity(entries.len());
                for (key, item) in entries.iter() {
                    map.insert(String::from(&**key), item.resolve(context, budget)?);
                }
                Value::Object(map)
            }
        })
    }
}

fn dotted(at: &str) -> String {
    if at.is_empty() || at.starts_with('[') { at.to_owned() } else { format!(".{at}") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn context() -> Context {
        let mut context = Context::new("start");
        context.set_output("start", json!({"input": {"name": "bench"}}));
        context.set_output("a", json!({"n": 3, "flag": false, "s": "x"}));
        context
    }

    #[test]
    fn defaults_may_hold_braces_and_parentheses() {
        let t = Template::parse(r#"{{a.output.nope | default({"a": ["}}", ")"]})}}"#).unwrap();
        assert_eq!(t.resolve(&context()).unwrap(), json!({"a": ["}}", ")"]}));
        let t = Template::parse("n={{ a.output.nope | default(-1) }}.").unwrap();
        assert_eq!(t.render(&context()).unwrap(), "n=-1.");
    }

    #[test]
    fn a_lone_placeholder_with_whitespace_around_gives_the_raw_value() {
        for text in ["{{a.output.n}}", "  {{a.output.n}}  ", "\n\t{{ a.output.n }}", "{{a.output.n}} "] {
            assert_eq!(Template::parse(text).unwrap().resolve(&context()).unwrap(), json!(3), "{text:?}");
        }
        let t = Template::parse(r#" {{a.output.nope | default({"k": [1]})}} "#).unwrap();
        assert_eq!(t.resolve(&context()).unwrap(), json!({"k": [1]}));
        // Other text around it, or two placeholders, give text.
        assert_eq!(Template::parse("n {{a.output.n}}").unwrap().resolve(&context()).unwrap(), json!("n 3"));
        assert_eq!(
            Template::parse("{{a.output.n}}{{a.output.n}}").unwrap().resolve(&context()).unwrap(),
            json!("33")
        );
    }

    #[test]
    fn path_segments_may_hold_inner_spaces() {
        let mut context = context();
        context.set_output("form", json!({"first name": "Ada", "a b": {"c  d": 1}}));
        let t = Template::parse("{{ steps.form.first name }}").unwrap();
        assert_eq!(t.resolve(&context).unwrap(), json!("Ada"));
        let t = Template::parse("x={{form.output.a b.c  d | default(0)}}").unwrap();
        assert_eq!(t.render(&context).unwrap(), "x=1");
        let t = Template::parse("{{ steps.form.last name }}").unwrap();
        assert_eq!(t.render(&context), Err(TemplateError::Missing { path: "steps.form.last name".into() }));
    }

    #[test]
    fn empty_braces_are_text() {
        let t = Template::parse("{{}}").unwrap();
        assert!(t.is_literal());
        assert_eq!(t.resolve(&context()).unwrap(), json!("{{}}"));
        let t = Template::parse("a{{}}b {{a.output.s}} {{}}").unwrap();
        assert_eq!(t.render(&context()).unwrap(), "a{{}}b x {{}}");
        assert_eq!(ValueTemplate::compile(&json!(["{{}}"])).resolve(&context()).unwrap(), json!(["{{}}"]));
    }

    #[test]
    fn unclosed_braces_are_text() {
        let t = Template::parse("a {{ b").unwrap();
        assert!(t.is_literal());
        assert_eq!(t.render(&context()).unwrap(), "a {{ b");
    }

    #[test]
    fn bad_placeholders_name_their_problem() {
        assert!(matches!(
            Template::parse("{{a.output.n | upper}}"),
            Err(TemplateError::UnknownFilter { filter, .. }) if filter == "upper"
        ));
        assert!(matches!(Template::parse("{{a | default(nope)}}"), Err(TemplateError::Malformed { .. })));
        assert!(matches!(Template::parse("{{ }}"), Err(TemplateError::Malformed { .. })));
        assert!(matches!(Template::parse("{{a | default(1}}"), Err(TemplateError::Malformed { .. })));
    }

    #[test]
    fn values_other_than_strings_are_written_as_json() {
        let t = Template::parse("{{a.output.flag}} {{a.output}} {{trigger}}").unwrap();
        assert_eq!(t.render(&context()).unwrap(), r#"false {"n":3,"flag":false,"s":"x"} {"name":"bench"}"#);
    }

    #[test]
    fn invalid_strings_fail_when_resolved_and_say_where() {
        let t = ValueTemplate::compile(&json!({"a": [1, "{{x | nope}}"]}));
        assert!(t.resolve(&context()).is_err());
        assert_eq!(t.first_error().unwrap().0, "a[1]");
    }
}
