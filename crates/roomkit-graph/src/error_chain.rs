//! An error with its causes, as one line of text.

use std::error::Error;
use std::fmt;

/// Shows an error followed by its causes (its [`source`](Error::source)
/// chain), `a: b: c`: the one way errors are written out where their causes
/// matter (a node's failure message, a server's log).
///
/// A cause whose text the line already holds is not repeated, so an error
/// whose message quotes its source reads the same as one that leaves it to
/// the chain.
///
/// ```
/// use roomkit_graph::{ErrorChain, HandlerError};
///
/// let missing = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
/// let error = HandlerError::execution("cannot read prompts.txt").with_source(missing);
/// assert_eq!(error.to_string(), "cannot read prompts.txt");
/// assert_eq!(ErrorChain(&error).to_string(), "cannot read prompts.txt: no such file");
/// ```
#[derive(Clone, Copy)]
pub struct ErrorChain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = self.0.to_string();
        let mut cause = self.0.source();
        while let Some(error) = cause {
            let said = error.to_string();
            if !said.is_empty() && !text.contains(&said) {
                text.push_str(": ");
                text.push_str(&said);
            }
            cause = error.source();
        }
        f.write_str(&text)
    }
}

impl fmt::Debug for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{message}")]
    struct Layer {
        message: String,
        source: Option<Box<dyn Error + Send + Sync>>,
    }

    fn layer(message: &str, source: Option<Layer>) -> Layer {
        Layer { message: message.to_owned(), source: source.map(|s| Box::new(s) as _) }
    }

    #[test]
    fn causes_follow_in_order_and_are_said_once() {
        let bottom = layer("connection refused", None);
        let middle = layer("tcp connect error", Some(bottom));
        let top = layer("error sending request", Some(middle));
        assert_eq!(
            ErrorChain(&top).to_string(),
            "error sending request: tcp connect error: connection refused"
        );

        // A message that quotes its cause already.
        let quoted = layer("provider \"p\": tcp connect error", Some(layer("tcp connect error", None)));
        assert_eq!(ErrorChain(&quoted).to_string(), "provider \"p\": tcp connect error");
        assert_eq!(ErrorChain(&layer("alone", None)).to_string(), "alone");
    }
}
