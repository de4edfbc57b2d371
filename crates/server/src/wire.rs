//! The connection under hyper. Hyper answers a request it cannot read by
//! itself, with an empty body, before any route sees it: a URI over 64 KiB
//! (414), a request head over its buffer (431), a malformed request line or
//! header (400). [`JsonRefusals`] writes those answers as JSON refusals, like
//! every other one.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::http::StatusCode;
use hyper::rt::{Read, ReadBufCursor, Write};

use crate::error::ApiError;
use crate::hygiene::REQUEST_ID;

/// A connection whose bare refusals written by hyper are replaced by JSON
/// ones (see the module's documentation).
pub(crate) struct JsonRefusals<T> {
    inner: T,
    /// A replacement answer, and how much of it is written.
    pending: Vec<u8>,
    written: usize,
}

impl<T> JsonRefusals<T> {
    pub(crate) fn new(inner: T) -> Self {
        JsonRefusals { inner, pending: Vec::new(), written: 0 }
    }
}

impl<T: Write + Unpin> JsonRefusals<T> {
    /// Writes what is left of a replacement answer.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.pending.len() {
            let written = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.written..]))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += written;
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: Read + Unpin> Read for JsonRefusals<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: ReadBufCursor<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: Write + Unpin> Write for JsonRefusals<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        if let Some(status) = bare_refusal(buf) {
            this.pending = json_refusal(status);
            this.written = 0;
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }

    /// No: so that hyper writes each of its own answers in one piece.
    fn is_write_vectored(&self) -> bool {
        false
    }
}

/// The status of `buf` when it is a whole answer hyper made by itself: a 4xx
/// head alone, with `connection: close` and `content-length: 0` (the routes'
/// refusals all have a JSON body).
fn bare_refusal(buf: &[u8]) -> Option<StatusCode> {
    let head = buf.strip_prefix(b"HTTP/1.1 ")?;
    let has = |line: &[u8]| buf.windows(line.len()).any(|window| window.eq_ignore_ascii_case(line));
    let whole =
        buf.ends_with(b"\r\n\r\n") && buf.windows(4).filter(|window| window == b"\r\n\r\n").count() == 1;
    if !whole || !has(b"\r\ncontent-length: 0\r\n") || !has(b"\r\nconnection: close\r\n") {
        return None;
    }
    let status = StatusCode::from_bytes(head.get(..3)?).ok()?;
    status.is_client_error().then_some(status)
}

/// A whole answer refusing with `status`, in JSON, closing the connection.
fn json_refusal(status: StatusCode) -> Vec<u8> {
    let body = serde_json::to_vec(&ApiError::for_status(status).body(None)).unwrap_or_default();
    let head = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\
         x-content-type-options: nosniff\r\ncache-control: no-store\r\n{}: {}\r\n\r\n",
        status.as_str(),
        status.canonical_reason().unwrap_or_default(),
        body.len(),
        REQUEST_ID,
        uuid::Uuid::now_v7(),
    );
    [head.into_bytes(), body].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hyper_s_own_bare_refusals_are_replaced() {
        let bare = b"HTTP/1.1 414 URI Too Long\r\nconnection: close\r\ncontent-length: 0\r\ndate: Mon, 30 Nov 2026 03:24:38 GMT\r\n\r\n";
        assert_eq!(bare_refusal(bare), Some(StatusCode::URI_TOO_LONG));
        let ours = b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 52\r\n\r\n";
        assert_eq!(bare_refusal(ours), None, "a route's refusal has a body");
        let fine = b"HTTP/1.1 204 No Content\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(bare_refusal(fine), None, "not a refusal");
        let body = b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\nHTTP/1.1 200 OK\r\n\r\n";
        assert_eq!(bare_refusal(body), None, "more than one head");
    }

    #[test]
    fn the_replacement_is_a_whole_json_answer() {
        let answer = String::from_utf8(json_refusal(StatusCode::URI_TOO_LONG)).expect("text");
        let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
        assert!(head.starts_with("HTTP/1.1 414 URI Too Long\r\n"), "{head}");
        assert!(head.contains(&format!("\r\ncontent-length: {}\r\n", body.len())), "{head}");
        assert!(head.contains("\r\ncontent-type: application/json\r\n"), "{head}");
        let body: serde_json::Value = serde_json::from_str(body).expect("JSON");
        assert_eq!(body["error"]["code"], "uri_too_long");
    }
}
