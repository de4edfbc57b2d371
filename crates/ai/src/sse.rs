//! Server-sent events, read incrementally from a byte stream.

/// One event: its `event:` name (empty when none) and its `data:` lines
/// joined with newlines.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct SseEvent {
    pub(crate) event: String,
    pub(crate) data: String,
}

/// Splits bytes, as they arrive in chunks of any size, into events.
#[derive(Debug, Default)]
pub(crate) struct SseParser {
    /// Bytes of a line not yet ended.
    line: Vec<u8>,
    /// The event being read.
    current: SseEvent,
    /// Whether the event being read has any field yet.
    started: bool,
    /// Whether it has a data line yet (the next one is joined with a newline).
    has_data: bool,
}

impl SseParser {
    /// Feeds a chunk; returns the events it completes.
    pub(crate) fn feed(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        let mut events = Vec::new();
        for &byte in chunk {
            if byte == b'\n' {
                let line = std::mem::take(&mut self.line);
                let line = line.strip_suffix(b"\r").unwrap_or(&line);
                if let Some(event) = self.line_ended(&String::from_utf8_lossy(line)) {
                    events.push(event);
                }
            } else {
                self.line.push(byte);
            }
        }
        events
    }

    /// The event left when the stream ends without a final blank line.
    pub(crate) fn finish(&mut self) -> Option<SseEvent> {
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.line_ended(&String::from_utf8_lossy(&line));
        }
        self.finish_event()
    }

    fn line_ended(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            return self.finish_event();
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => {
                self.current.event = value.to_owned();
                self.started = true;
            }
            "data" => {
                if self.has_data {
                    self.current.data.push('\n');
                }
                self.current.data.push_str(value);
                self.started = true;
                self.has_data = true;
            }
            _ => {}
        }
        None
    }

    fn finish_event(&mut self) -> Option<SseEvent> {
        if !self.started {
            return None;
        }
        self.started = false;
        self.has_data = false;
        Some(std::mem::take(&mut self.current))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_in_chunks(text: &str, size: usize) -> Vec<SseEvent> {
        let mut parser = SseParser::default();
        let mut events: Vec<SseEvent> = text.as_bytes().chunks(size).flat_map(|c| parser.feed(c)).collect();
        events.extend(parser.finish());
        events
    }

    #[test]
    fn events_split_anywhere_read_the_same() {
        let text = "event: message_start\ndata: {\"a\":1}\n\n: ping\r\ndata: x\r\ndata: y\r\n\r\ndata: h\u{e9}\n\ndata: [DONE]";
        let expected = vec![
            SseEvent { event: "message_start".into(), data: "{\"a\":1}".into() },
            SseEvent { event: String::new(), data: "x\ny".into() },
            SseEvent { event: String::new(), data: "h\u{e9}".into() },
            SseEvent { event: String::new(), data: "[DONE]".into() },
        ];
        for size in [1, 2, 3, 7, 1000] {
            assert_eq!(parse_in_chunks(text, size), expected, "chunks of {size}");
        }
    }
}
