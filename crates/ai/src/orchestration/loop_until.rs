//! The loop strategy: one agent is asked again and again, in one
//! conversation, until a condition on its last reply holds.

use roomkit_graph::{Condition, Context, FieldCondition, Path, Scope, Template};
use serde_json::Value;

use crate::error::AiError;
use crate::message::Message;
use crate::session::{Session, Turn};

/// The context entry holding the last reply while `until` and `loop_prompt`
/// are evaluated (their `input` paths are redirected to it).
const LAST_REPLY: &str = "__loop_last_reply";

/// What the agent is asked after each reply when the node sets no `loop_prompt`.
const DEFAULT_LOOP_PROMPT: &str = "Continue.";

/// Runs `agent` on `task`, then again with `loop_prompt`, until `until` holds
/// or `max_rounds` replies were given; the last reply is the result.
pub(super) async fn run(
    session: &mut Session<'_>,
    scope: &Scope<'_>,
    agent: &str,
    task: String,
    until: Option<&Condition>,
    loop_prompt: Option<&str>,
    max_rounds: u32,
) -> Result<String, AiError> {
    let agent = session.agent(agent, "agent")?;
    let until = until.map(redirect_condition);
    let loop_prompt = Template::parse(&redirect_template(loop_prompt.unwrap_or(DEFAULT_LOOP_PROMPT)))?;
    let mut conversation = vec![Message::User(task)];
    let mut last = String::new();
    for round in 1..=max_rounds {
        last = match session.converse(agent, &mut conversation, &[]).await? {
            Turn::Answer(text) => text,
            Turn::Handled { .. } => String::new(),
        };
        let context = with_last_reply(scope.context(), &last);
        if let Some(until) = &until
            && until.evaluate(&context)?
        {
            break;
        }
        if round < max_rounds {
            let prompt = loop_prompt.render_within(&context, scope.limits().output_bytes)?;
            conversation.push(Message::User(prompt));
        }
    }
    Ok(last)
}

/// The run's context with the last reply stored where redirected `input`
/// paths read it: as JSON when it parses, else as text.
fn with_last_reply(context: &Context, reply: &str) -> Context {
    let value = serde_json::from_str(reply.trim()).unwrap_or_else(|_| Value::String(reply.to_owned()));
    let mut context = context.clone();
    context.set_output(LAST_REPLY, value);
    context
}

/// `input` or `input.x` as the path of the last reply's entry.
fn redirect_path(path: &str) -> Option<String> {
    let rest = path.strip_prefix("input")?;
    (rest.is_empty() || rest.starts_with('.')).then(|| format!("{LAST_REPLY}.output{rest}"))
}

/// The condition with every `input...` path reading the last reply.
fn redirect_condition(condition: &Condition) -> Condition {
    match condition {
        Condition::Field(field) => match redirect_path(field.path.as_str()) {
            Some(path) => Condition::Field(FieldCondition { path: Path::parse(&path), ..field.clone() }),
            None => condition.clone(),
        },
        Condition::All(items) => Condition::All(items.iter().map(redirect_condition).collect()),
        Condition::Any(items) => Condition::Any(items.iter().map(redirect_condition).collect()),
        Condition::Not(items) => Condition::Not(items.iter().map(redirect_condition).collect()),
        Condition::Lenient { raw, reading, reason } => Condition::Lenient {
            raw: raw.clone(),
            reading: reading.as_deref().map(|reading| Box::new(redirect_condition(reading))),
            reason: reason.clone(),
        },
        other => other.clone(),
    }
}

/// The template text with every `{{ input... }}` placeholder reading the last reply.
fn redirect_template(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        let (before, after) = rest.split_at(open + 2);
        out.push_str(before);
        let inner = after.trim_start();
        out.push_str(&after[..after.len() - inner.len()]);
        let path_end = inner.find(|c: char| c == '}' || c == '|' || c.is_whitespace()).unwrap_or(inner.len());
        match redirect_path(&inner[..path_end]) {
            Some(path) => out.push_str(&path),
            None => out.push_str(&inner[..path_end]),
        }
        rest = &inner[path_end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn input_paths_read_the_last_reply_and_others_the_run() {
        let mut run = Context::new("start");
        run.set_output("start", json!({"input": {"goal": 3}}));
        let until = redirect_condition(&Condition::all([
            Condition::field("input.score").gt(2),
            Condition::field("trigger.goal").equals(3),
        ]));
        assert!(until.evaluate(&with_last_reply(&run, r#"{"score": 5}"#)).unwrap());
        assert!(!until.evaluate(&with_last_reply(&run, r#"{"score": 1}"#)).unwrap());
        // Read leniently (no "type"), it is redirected all the same.
        let lenient = redirect_condition(&Condition::from_value(
            &json!({"path": "input.score", "op": "gt", "value": 2}),
        ));
        assert!(lenient.evaluate(&with_last_reply(&run, r#"{"score": 5}"#)).unwrap());
        let done = redirect_condition(&Condition::field("input").contains("DONE"));
        assert!(done.evaluate(&with_last_reply(&run, "All DONE.")).unwrap());
        assert!(
            !redirect_condition(&Condition::field("inputs.x").exists())
                .evaluate(&with_last_reply(&run, "{\"x\": 1}"))
                .unwrap()
        );
    }

    #[test]
    fn input_placeholders_are_redirected_and_others_kept() {
        assert_eq!(
            redirect_template("Improve: {{ input }} / {{input.a | default(1)}} for {{trigger.x}} {{inputs}}"),
            format!(
                "Improve: {{{{ {LAST_REPLY}.output }}}} / {{{{{LAST_REPLY}.output.a | default(1)}}}} for {{{{trigger.x}}}} {{{{inputs}}}}"
            )
        );
        let mut run = Context::new("start");
        run.set_output("start", json!({"input": {}}));
        let template = Template::parse(&redirect_template("Was: {{input}}")).unwrap();
        assert_eq!(template.render(&with_last_reply(&run, "draft one")).unwrap(), "Was: draft one");
    }
}
