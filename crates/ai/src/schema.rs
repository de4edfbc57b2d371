//! Structured output: reading a reply as a JSON object and checking it against
//! the node's `output_schema`.

use std::fmt;

use serde_json::Value;

/// A compiled JSON Schema for an agent's reply.
pub(crate) struct OutputSchema {
    schema: Value,
    validator: jsonschema::Validator,
}

impl fmt::Debug for OutputSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("OutputSchema").field(&self.schema).finish()
    }
}

impl OutputSchema {
    /// Compiles `schema`; the error says why it is not a usable schema.
    pub(crate) fn compile(schema: &Value) -> Result<Self, String> {
        let validator = jsonschema::validator_for(schema).map_err(|e| e.to_string())?;
        Ok(OutputSchema { schema: schema.clone(), validator })
    }

    /// The instruction appended to the prompt.
    pub(crate) fn instruction(&self) -> String {
        format!(
            "Reply with only a JSON object, without any other text, that fits this JSON Schema:\n{}",
            self.schema
        )
    }

    /// The reply as a JSON object that fits the schema, or what is wrong with it.
    pub(crate) fn check(&self, reply: &str) -> Result<Value, String> {
        let value = parse_object(reply)?;
        let problems: Vec<String> = self
            .validator
            .iter_errors(&value)
            .map(|error| {
                let at = error.instance_path().to_string();
                if at.is_empty() { error.to_string() } else { format!("at {at}: {error}") }
            })
            .collect();
        if problems.is_empty() { Ok(value) } else { Err(problems.join("; ")) }
    }
}

/// A reply's JSON object: the whole text, or inside a ```json fence, or from
/// its first `{` to its last `}`.
fn parse_object(reply: &str) -> Result<Value, String> {
    let text = reply.trim();
    let fenced = text
        .strip_prefix("```json")
        .or_else(|| text.strip_prefix("```"))
        .and_then(|rest| rest.trim_end().strip_suffix("```"))
        .map(str::trim);
    let braces = match (text.find('{'), text.rfind('}')) {
        (Some(start), Some(end)) if start < end => Some(&text[start..=end]),
        _ => None,
    };
    let mut first_error = None;
    for candidate in [Some(text), fenced, braces].into_iter().flatten() {
        match serde_json::from_str::<Value>(candidate) {
            Ok(value @ Value::Object(_)) => return Ok(value),
            Ok(other) => {
                first_error.get_or_insert_with(|| format!("the reply is JSON but not an object: {other}"));
            }
            Err(error) => {
                first_error.get_or_insert_with(|| format!("the reply is not JSON ({error})"));
            }
        }
    }
    Err(first_error.unwrap_or_else(|| "the reply is empty".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn replies_are_read_plain_fenced_or_wrapped_in_prose() {
        let schema = OutputSchema::compile(&json!({
            "type": "object",
            "properties": {"severity": {"enum": ["low", "high"]}},
            "required": ["severity"]
        }))
        .unwrap();
        assert_eq!(schema.check(r#"{"severity": "low"}"#), Ok(json!({"severity": "low"})));
        assert_eq!(schema.check("```json\n{\"severity\": \"high\"}\n```"), Ok(json!({"severity": "high"})));
        assert_eq!(schema.check("Here: {\"severity\": \"high\"} done"), Ok(json!({"severity": "high"})));
        let wrong = schema.check(r#"{"severity": "urgent"}"#).unwrap_err();
        assert!(wrong.contains("/severity") && wrong.contains("urgent"), "{wrong}");
        let missing = schema.check("{}").unwrap_err();
        assert!(missing.contains("severity"), "{missing}");
        assert!(schema.check("no json here").unwrap_err().contains("not JSON"));
        assert!(schema.check("[1]").unwrap_err().contains("not an object"));
        assert!(OutputSchema::compile(&json!({"type": 12})).is_err());
    }
}
