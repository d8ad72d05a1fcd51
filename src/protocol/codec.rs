//! `NatsCodec`: bytes <-> frames for the client protocol. Owns framing limits (max control line,
//! max payload) and the exact wording of framing errors; does not own semantics (subject
//! validity, permissions, routing, auth, whether headers were negotiated), which the connection
//! decides. The connection shares its headers decision with the decoder through
//! [`HeadersFlag`], because nats-server refuses an `HPUB` before looking at its arguments.
//!
//! The decoder follows nats-server's `parser.go` for client connections:
//! - operation names are matched byte by byte, case-insensitively (`PuB` is `PUB`); a byte that
//!   cannot continue any operation is `Unknown Protocol Operation` at once;
//! - `PUB`, `HPUB`, `SUB`, `UNSUB` and `-ERR` need at least one space or tab after the name,
//!   `CONNECT` and `INFO` do not; runs of spaces and tabs separate arguments;
//! - a control line ends at `\n`, a `\r` just before it is dropped (a bare `\n` is accepted);
//! - `PING`, `PONG` and `+OK` ignore everything up to the next `\n`;
//! - the argument part of a control line may not exceed `max_control_line`; this is also checked
//!   while the line is still incomplete, so an endless line fails without waiting for its end;
//! - the payload of `PUB`/`HPUB` is taken by length and must be followed by exactly `\r\n`.
//!
//! Client `+OK` and `INFO` are accepted and skipped (nats-server ignores them from clients);
//! client `-ERR` closes the connection silently, as nats-server does.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use bytestring::ByteString;
use tokio_util::codec::{Decoder, Encoder};

use super::frame::{ClientOp, ServerOp};

/// nats-server's default `max_control_line`.
pub const DEFAULT_MAX_CONTROL_LINE: usize = 4096;

/// nats-server's `parseSize` accepts at most this many digits (999,999,999).
const MAX_SIZE_DIGITS: usize = 9;

/// A framing error. Every variant is fatal: the connection sends `-ERR '<err_text>'` when
/// [`ProtocolError::err_text`] is `Some`, then closes.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// A byte that cannot start or continue a known operation, a payload not followed by
    /// `\r\n`, or an empty line.
    #[error("Unknown Protocol Operation")]
    UnknownOperation,
    /// `PUB`/`HPUB` announced more than `max_payload` bytes (total size for `HPUB`).
    #[error("Maximum Payload Violation")]
    MaxPayload,
    /// The argument part of a control line is longer than `max_control_line`. nats-server sends
    /// the lower-case text of its `ErrMaxControlLine`.
    #[error("maximum control line exceeded")]
    MaxControlLine,
    /// Arguments that nats-server rejects by closing the connection without an `-ERR`: wrong
    /// argument count, bad or missing sizes, header size above total size, `CONNECT` or `INFO`
    /// without a JSON document, non-UTF-8 control line.
    #[error("parse error: {0}")]
    ParseError(String),
    /// The client sent `-ERR`; nats-server logs it and closes without replying.
    #[error("client error: {0}")]
    ClientErr(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

impl ProtocolError {
    /// The exact text to send as `-ERR '<text>'` before closing, or `None` to close silently
    /// (what nats-server does for that input).
    pub fn err_text(&self) -> Option<&str> {
        match self {
            ProtocolError::UnknownOperation => Some("Unknown Protocol Operation"),
            ProtocolError::MaxPayload => Some("Maximum Payload Violation"),
            ProtocolError::MaxControlLine => Some("maximum control line exceeded"),
            ProtocolError::ParseError(_) | ProtocolError::ClientErr(_) | ProtocolError::Io(_) => {
                None
            }
        }
    }
}

/// Operations whose control line carries arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ArgOp {
    Pub,
    HPub,
    Sub,
    Unsub,
    Connect,
    Info,
    Err,
}

/// Which operation a keyword names, and what has to follow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keyword {
    /// Arguments follow; `sep` says whether a space or tab is mandatory first.
    Args { op: ArgOp, sep: bool },
    /// Everything up to `\n` is ignored; `emit` is the op produced (None for `+OK`).
    Bare(Option<BareOp>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BareOp {
    Ping,
    Pong,
}

const KEYWORDS: &[(&[u8], Keyword)] = &[
    (
        b"PUB",
        Keyword::Args {
            op: ArgOp::Pub,
            sep: true,
        },
    ),
    (
        b"HPUB",
        Keyword::Args {
            op: ArgOp::HPub,
            sep: true,
        },
    ),
    (
        b"SUB",
        Keyword::Args {
            op: ArgOp::Sub,
            sep: true,
        },
    ),
    (
        b"UNSUB",
        Keyword::Args {
            op: ArgOp::Unsub,
            sep: true,
        },
    ),
    (
        b"CONNECT",
        Keyword::Args {
            op: ArgOp::Connect,
            sep: false,
        },
    ),
    (
        b"INFO",
        Keyword::Args {
            op: ArgOp::Info,
            sep: false,
        },
    ),
    (
        b"-ERR",
        Keyword::Args {
            op: ArgOp::Err,
            sep: true,
        },
    ),
    (b"PING", Keyword::Bare(Some(BareOp::Ping))),
    (b"PONG", Keyword::Bare(Some(BareOp::Pong))),
    (b"+OK", Keyword::Bare(None)),
];

enum KeywordMatch {
    /// Every byte so far is a prefix of some keyword.
    Incomplete,
    Unknown,
    Found(Keyword, usize),
}

fn match_keyword(buf: &[u8]) -> KeywordMatch {
    let mut any_prefix = false;
    for (word, kind) in KEYWORDS {
        let n = word.len().min(buf.len());
        if !buf[..n].eq_ignore_ascii_case(&word[..n]) {
            continue;
        }
        if n == word.len() {
            return KeywordMatch::Found(*kind, n);
        }
        any_prefix = true;
    }
    if any_prefix {
        KeywordMatch::Incomplete
    } else {
        KeywordMatch::Unknown
    }
}

/// Whether the client negotiated headers in CONNECT: set by the connection, read by its decoder.
/// Frames are decoded one at a time as the connection handles them, so a CONNECT is applied
/// before the next control line is parsed.
#[derive(Debug, Clone, Default)]
pub struct HeadersFlag(Arc<AtomicBool>);

impl HeadersFlag {
    pub fn set(&self, on: bool) {
        self.0.store(on, Ordering::Relaxed);
    }

    pub fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// A `PUB`/`HPUB` whose control line has been read, waiting for its payload.
#[derive(Debug)]
struct PendingPub {
    subject: ByteString,
    reply: Option<ByteString>,
    /// Header length for `HPUB` (None for `PUB`, and for `HPUB` with a zero header length, which
    /// nats-server treats as a message without headers).
    hdr_len: Option<usize>,
    /// Total bytes before the closing `\r\n` (headers included).
    size: usize,
}

#[derive(Debug, Default)]
enum State {
    #[default]
    Start,
    /// After `PING`/`PONG`/`+OK`: drop bytes up to `\n`, then emit the op.
    SkipLine(Option<BareOp>),
    /// Reading a control line's arguments; `started` is false while leading blanks are skipped,
    /// `scanned` is how far `src` has been searched for `\n` already.
    Arg {
        op: ArgOp,
        started: bool,
        scanned: usize,
    },
    Payload(PendingPub),
}

/// The client-protocol codec. Keeps parse state between reads, so frames may be split at any byte.
#[derive(Debug)]
pub struct NatsCodec {
    pub max_control_line: usize,
    pub max_payload: usize,
    /// None: headers are always accepted (a codec without a connection, as in unit tests).
    headers: Option<HeadersFlag>,
    state: State,
}

impl NatsCodec {
    pub fn new(max_payload: usize) -> Self {
        Self::with_limits(DEFAULT_MAX_CONTROL_LINE, max_payload)
    }

    pub fn with_limits(max_control_line: usize, max_payload: usize) -> Self {
        Self {
            max_control_line,
            max_payload,
            headers: None,
            state: State::Start,
        }
    }

    /// `HPUB` is refused (the connection closes without an `-ERR`, as nats-server closes it)
    /// while `flag` is false.
    pub fn with_headers_flag(mut self, flag: HeadersFlag) -> Self {
        self.headers = Some(flag);
        self
    }

    fn decode_arg_line(
        &mut self,
        op: ArgOp,
        line: Bytes,
    ) -> Result<Option<ClientOp>, ProtocolError> {
        match op {
            ArgOp::Pub | ArgOp::HPub => {
                let pending = self.parse_pub_args(op, line)?;
                self.state = State::Payload(pending);
                Ok(None)
            }
            ArgOp::Sub => parse_sub_args(line).map(Some),
            ArgOp::Unsub => parse_unsub_args(line).map(Some),
            ArgOp::Connect => {
                if line.is_empty() {
                    return Err(ProtocolError::ParseError(
                        "connect without a json document".into(),
                    ));
                }
                Ok(Some(ClientOp::Connect(line)))
            }
            ArgOp::Info => {
                // nats-server unmarshals a client's INFO and ignores it; only bad JSON closes.
                match serde_json::from_slice::<serde::de::IgnoredAny>(&line) {
                    Ok(_) => Ok(None),
                    Err(e) => Err(ProtocolError::ParseError(format!("info: {e}"))),
                }
            }
            ArgOp::Err => Err(ProtocolError::ClientErr(
                String::from_utf8_lossy(&line).into_owned(),
            )),
        }
    }

    fn parse_pub_args(&self, op: ArgOp, line: Bytes) -> Result<PendingPub, ProtocolError> {
        // nats-server checks headers support before the arguments (processHeaderPub).
        if op == ArgOp::HPub && self.headers.as_ref().is_some_and(|h| !h.get()) {
            return Err(ProtocolError::ParseError(
                "hpub: headers not negotiated".into(),
            ));
        }
        let line = utf8_line(line)?;
        let mut args: [&str; 5] = [""; 5];
        let n = split_args(&line, is_pub_blank, &mut args);
        let name = if op == ArgOp::Pub { "pub" } else { "hpub" };
        let (subject, reply, hdr, total) = match (op, n) {
            (ArgOp::Pub, 2) => (args[0], None, None, args[1]),
            (ArgOp::Pub, 3) => (args[0], Some(args[1]), None, args[2]),
            (ArgOp::HPub, 3) => (args[0], None, Some(args[1]), args[2]),
            (ArgOp::HPub, 4) => (args[0], Some(args[1]), Some(args[2]), args[3]),
            _ => {
                return Err(ProtocolError::ParseError(format!(
                    "{name}: wrong number of arguments: {:?}",
                    &*line
                )));
            }
        };
        let hdr_len = match hdr {
            Some(h) => Some(parse_size(h).ok_or_else(|| {
                ProtocolError::ParseError(format!(
                    "{name}: bad or missing header size: {:?}",
                    &*line
                ))
            })?),
            None => None,
        };
        let size = parse_size(total).ok_or_else(|| {
            let what = if op == ArgOp::Pub {
                "size"
            } else {
                "total size"
            };
            ProtocolError::ParseError(format!("{name}: bad or missing {what}: {:?}", &*line))
        })?;
        if let Some(h) = hdr_len
            && h > size
        {
            return Err(ProtocolError::ParseError(format!(
                "hpub: header size larger than total size: {:?}",
                &*line
            )));
        }
        if size > self.max_payload {
            return Err(ProtocolError::MaxPayload);
        }
        Ok(PendingPub {
            subject: line.slice_ref(subject),
            reply: reply.map(|r| line.slice_ref(r)),
            hdr_len: hdr_len.filter(|&h| h > 0),
            size,
        })
    }
}

fn utf8_line(line: Bytes) -> Result<ByteString, ProtocolError> {
    ByteString::try_from(line)
        .map_err(|_| ProtocolError::ParseError("control line is not utf-8".into()))
}

/// `PUB`/`HPUB` split on spaces and tabs only (nats-server's unrolled splitter).
fn is_pub_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// `SUB`/`UNSUB` also split on `\r` and `\n` (nats-server's `splitArg`).
fn is_sub_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Splits `s` into at most `out.len()` arguments; returns the real count (which may exceed the
/// capacity, so callers can reject too many arguments without allocating).
fn split_args<'a>(s: &'a str, blank: fn(u8) -> bool, out: &mut [&'a str]) -> usize {
    let bytes = s.as_bytes();
    let mut n = 0;
    let mut start: Option<usize> = None;
    for (i, &b) in bytes.iter().enumerate() {
        if blank(b) {
            if let Some(st) = start.take() {
                if n < out.len() {
                    out[n] = &s[st..i];
                }
                n += 1;
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(st) = start {
        if n < out.len() {
            out[n] = &s[st..];
        }
        n += 1;
    }
    n
}

/// nats-server's `parseSize`: 1 to 9 ASCII digits, nothing else.
fn parse_size(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    if b.is_empty() || b.len() > MAX_SIZE_DIGITS {
        return None;
    }
    let mut n = 0usize;
    for &d in b {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n * 10 + usize::from(d - b'0');
    }
    Some(n)
}

fn parse_sub_args(line: Bytes) -> Result<ClientOp, ProtocolError> {
    let line = utf8_line(line)?;
    let mut args: [&str; 4] = [""; 4];
    let n = split_args(&line, is_sub_blank, &mut args);
    let (subject, queue, sid) = match n {
        2 => (args[0], None, args[1]),
        3 => (args[0], Some(args[1]), args[2]),
        _ => {
            return Err(ProtocolError::ParseError(format!(
                "sub: wrong number of arguments: {:?}",
                &*line
            )));
        }
    };
    Ok(ClientOp::Sub {
        subject: line.slice_ref(subject),
        queue: queue.map(|q| line.slice_ref(q)),
        sid: line.slice_ref(sid),
    })
}

fn parse_unsub_args(line: Bytes) -> Result<ClientOp, ProtocolError> {
    let line = utf8_line(line)?;
    let mut args: [&str; 3] = [""; 3];
    let n = split_args(&line, is_sub_blank, &mut args);
    let (sid, max) = match n {
        1 => (args[0], None),
        // nats-server turns an unparsable max into -1 and treats it, like 0, as "remove now".
        2 => (args[0], parse_size(args[1]).filter(|&m| m > 0)),
        _ => {
            return Err(ProtocolError::ParseError(format!(
                "unsub: wrong number of arguments: {:?}",
                &*line
            )));
        }
    };
    Ok(ClientOp::Unsub {
        sid: line.slice_ref(sid),
        max: max.map(|m| m as u64),
    })
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

impl Decoder for NatsCodec {
    type Item = ClientOp;
    type Error = ProtocolError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<ClientOp>, ProtocolError> {
        loop {
            match &mut self.state {
                State::Start => {
                    if src.is_empty() {
                        return Ok(None);
                    }
                    let (kw, len) = match match_keyword(src) {
                        KeywordMatch::Found(kw, len) => (kw, len),
                        KeywordMatch::Incomplete => return Ok(None),
                        KeywordMatch::Unknown => return Err(ProtocolError::UnknownOperation),
                    };
                    match kw {
                        Keyword::Bare(op) => {
                            src.advance(len);
                            self.state = State::SkipLine(op);
                        }
                        Keyword::Args { op, sep } => {
                            if sep {
                                match src.get(len) {
                                    None => return Ok(None),
                                    Some(&b) if is_blank(b) => {}
                                    Some(_) => return Err(ProtocolError::UnknownOperation),
                                }
                            }
                            src.advance(len);
                            self.state = State::Arg {
                                op,
                                started: false,
                                scanned: 0,
                            };
                        }
                    }
                }
                State::SkipLine(op) => {
                    let op = *op;
                    match src.iter().position(|&b| b == b'\n') {
                        None => {
                            src.clear();
                            return Ok(None);
                        }
                        Some(nl) => {
                            src.advance(nl + 1);
                            self.state = State::Start;
                            match op {
                                Some(BareOp::Ping) => return Ok(Some(ClientOp::Ping)),
                                Some(BareOp::Pong) => return Ok(Some(ClientOp::Pong)),
                                None => {}
                            }
                        }
                    }
                }
                State::Arg {
                    op,
                    started,
                    scanned,
                } => {
                    if !*started {
                        let blanks = src.iter().take_while(|&&b| is_blank(b)).count();
                        src.advance(blanks);
                        if src.is_empty() {
                            return Ok(None);
                        }
                        *started = true;
                    }
                    let from = *scanned;
                    let Some(nl) = src[from..].iter().position(|&b| b == b'\n') else {
                        *scanned = src.len();
                        // Like nats-server, a pending `\r` at the very end is not counted.
                        let pending = src.len() - usize::from(src.last() == Some(&b'\r'));
                        if pending > self.max_control_line {
                            return Err(ProtocolError::MaxControlLine);
                        }
                        return Ok(None);
                    };
                    let nl = from + nl;
                    let op = *op;
                    let arg_len = nl - usize::from(nl > 0 && src[nl - 1] == b'\r');
                    if arg_len > self.max_control_line {
                        return Err(ProtocolError::MaxControlLine);
                    }
                    let mut line = src.split_to(nl + 1);
                    line.truncate(arg_len);
                    self.state = State::Start;
                    if let Some(item) = self.decode_arg_line(op, line.freeze())? {
                        return Ok(Some(item));
                    }
                }
                State::Payload(p) => {
                    let size = p.size;
                    if src.len() > size && src[size] != b'\r' {
                        return Err(ProtocolError::UnknownOperation);
                    }
                    if src.len() > size + 1 && src[size + 1] != b'\n' {
                        return Err(ProtocolError::UnknownOperation);
                    }
                    if src.len() < size + 2 {
                        src.reserve(size + 2 - src.len());
                        return Ok(None);
                    }
                    let subject = std::mem::replace(&mut p.subject, ByteString::new());
                    let reply = p.reply.take();
                    let hdr_len = p.hdr_len;
                    self.state = State::Start;
                    let mut payload = src.split_to(size).freeze();
                    src.advance(2);
                    let headers = hdr_len.map(|h| payload.split_to(h));
                    return Ok(Some(ClientOp::Pub {
                        subject,
                        reply,
                        headers,
                        payload,
                    }));
                }
            }
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<ClientOp>, ProtocolError> {
        // A client that hangs up mid-frame is not a protocol error: nats-server just closes.
        match self.decode(buf)? {
            Some(op) => Ok(Some(op)),
            None => {
                buf.clear();
                Ok(None)
            }
        }
    }
}

/// Writes the decimal form of `n` without allocating.
fn put_u64(dst: &mut BytesMut, mut n: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    dst.put_slice(&tmp[i..]);
}

fn digits(mut n: usize) -> usize {
    let mut d = 1;
    while n >= 10 {
        n /= 10;
        d += 1;
    }
    d
}

impl Encoder<ServerOp> for NatsCodec {
    type Error = ProtocolError;

    fn encode(&mut self, item: ServerOp, dst: &mut BytesMut) -> Result<(), ProtocolError> {
        match item {
            ServerOp::Info(json) => {
                // nats-server writes a space between the document and the line end.
                dst.reserve(5 + json.len() + 3);
                dst.put_slice(b"INFO ");
                dst.put_slice(&json);
                dst.put_slice(b" \r\n");
            }
            ServerOp::Msg {
                subject,
                sid,
                reply,
                headers,
                payload,
            } => {
                // nats-server only uses HMSG when the header block is non-empty.
                let headers = headers.filter(|h| !h.is_empty());
                let reply_len = reply.as_ref().map_or(0, |r| r.len() + 1);
                let total = headers.as_ref().map_or(0, Bytes::len) + payload.len();
                let op_len = if headers.is_some() { 5 } else { 4 };
                let mut need =
                    op_len + subject.len() + 1 + sid.len() + reply_len + 1 + digits(total);
                if let Some(h) = &headers {
                    need += digits(h.len()) + 1;
                }
                need += 2 + total + 2;
                dst.reserve(need);
                dst.put_slice(if headers.is_some() { b"HMSG " } else { b"MSG " });
                dst.put_slice(subject.as_bytes());
                dst.put_u8(b' ');
                dst.put_slice(sid.as_bytes());
                if let Some(r) = &reply {
                    dst.put_u8(b' ');
                    dst.put_slice(r.as_bytes());
                }
                dst.put_u8(b' ');
                if let Some(h) = &headers {
                    put_u64(dst, h.len() as u64);
                    dst.put_u8(b' ');
                }
                put_u64(dst, total as u64);
                dst.put_slice(b"\r\n");
                if let Some(h) = &headers {
                    dst.put_slice(h);
                }
                dst.put_slice(&payload);
                dst.put_slice(b"\r\n");
            }
            ServerOp::Ping => dst.put_slice(b"PING\r\n"),
            ServerOp::Pong => dst.put_slice(b"PONG\r\n"),
            ServerOp::Ok => dst.put_slice(b"+OK\r\n"),
            ServerOp::Err(text) => {
                dst.reserve(6 + text.len() + 3);
                dst.put_slice(b"-ERR '");
                dst.put_slice(text.as_bytes());
                dst.put_slice(b"'\r\n");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MAX_PAYLOAD: usize = 1024;

    /// What a decoder made of an input: the ops, then the error that stopped it (as its
    /// variant's wire text or Display, which is enough to compare splittings).
    #[derive(Debug, PartialEq)]
    struct Outcome {
        ops: Vec<ClientOp>,
        err: Option<String>,
    }

    fn err_key(e: &ProtocolError) -> String {
        match e.err_text() {
            Some(t) => format!("-ERR '{t}'"),
            None => format!("close: {e}"),
        }
    }

    fn run_chunks(codec: &mut NatsCodec, chunks: &[&[u8]]) -> Outcome {
        let mut buf = BytesMut::new();
        let mut ops = Vec::new();
        for chunk in chunks {
            buf.extend_from_slice(chunk);
            loop {
                match codec.decode(&mut buf) {
                    Ok(Some(op)) => ops.push(op),
                    Ok(None) => break,
                    Err(e) => {
                        return Outcome {
                            ops,
                            err: Some(err_key(&e)),
                        };
                    }
                }
            }
        }
        Outcome { ops, err: None }
    }

    fn run(input: &[u8]) -> Outcome {
        run_chunks(&mut NatsCodec::new(MAX_PAYLOAD), &[input])
    }

    /// A tiny deterministic generator so chunkings are reproducible without a seed dependency.
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self, bound: usize) -> usize {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((self.0 >> 33) as usize) % bound.max(1)
        }
    }

    fn chunked<'a>(input: &'a [u8], rng: &mut Lcg, max_chunk: usize) -> Vec<&'a [u8]> {
        let mut out = Vec::new();
        let mut rest = input;
        while !rest.is_empty() {
            let n = 1 + rng.next(max_chunk.min(rest.len()));
            let (a, b) = rest.split_at(n);
            out.push(a);
            rest = b;
        }
        out
    }

    /// Decodes `input` whole, byte by byte, split in two at every boundary and in random chunks;
    /// every way must give the same outcome, which is returned.
    fn run_all_splits(input: &[u8]) -> Outcome {
        let whole = run(input);
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(
            run_chunks(&mut NatsCodec::new(MAX_PAYLOAD), &bytes),
            whole,
            "byte by byte: {:?}",
            String::from_utf8_lossy(input)
        );
        for i in 0..=input.len() {
            let (a, b) = input.split_at(i);
            assert_eq!(
                run_chunks(&mut NatsCodec::new(MAX_PAYLOAD), &[a, b]),
                whole,
                "split at {i}: {:?}",
                String::from_utf8_lossy(input)
            );
        }
        let mut rng = Lcg(input.len() as u64 + 7);
        for max_chunk in [2, 3, 5, 8, 13] {
            for _ in 0..4 {
                let chunks = chunked(input, &mut rng, max_chunk);
                assert_eq!(
                    run_chunks(&mut NatsCodec::new(MAX_PAYLOAD), &chunks),
                    whole,
                    "chunks {chunks:?}"
                );
            }
        }
        whole
    }

    fn bs(s: &str) -> ByteString {
        ByteString::from(s)
    }

    fn pub_op(subject: &str, reply: Option<&str>, payload: &[u8]) -> ClientOp {
        ClientOp::Pub {
            subject: bs(subject),
            reply: reply.map(bs),
            headers: None,
            payload: Bytes::copy_from_slice(payload),
        }
    }

    fn hpub_op(subject: &str, reply: Option<&str>, headers: &[u8], payload: &[u8]) -> ClientOp {
        ClientOp::Pub {
            subject: bs(subject),
            reply: reply.map(bs),
            headers: Some(Bytes::copy_from_slice(headers)),
            payload: Bytes::copy_from_slice(payload),
        }
    }

    fn sub_op(subject: &str, queue: Option<&str>, sid: &str) -> ClientOp {
        ClientOp::Sub {
            subject: bs(subject),
            queue: queue.map(bs),
            sid: bs(sid),
        }
    }

    fn unsub_op(sid: &str, max: Option<u64>) -> ClientOp {
        ClientOp::Unsub { sid: bs(sid), max }
    }

    fn ok(ops: Vec<ClientOp>) -> Outcome {
        Outcome { ops, err: None }
    }

    fn failed(ops: Vec<ClientOp>, err: &str) -> Outcome {
        Outcome {
            ops,
            err: Some(err.to_string()),
        }
    }

    const UNKNOWN: &str = "-ERR 'Unknown Protocol Operation'";
    const MAX_PAYLOAD_ERR: &str = "-ERR 'Maximum Payload Violation'";
    const MAX_CONTROL: &str = "-ERR 'maximum control line exceeded'";

    fn is_silent_close(o: &Outcome) -> bool {
        o.err.as_deref().is_some_and(|e| e.starts_with("close: "))
    }

    #[test]
    fn every_op() {
        let input = b"CONNECT {\"verbose\":false}\r\n\
            PUB foo 5\r\nhello\r\n\
            PUB foo reply.1 0\r\n\r\n\
            HPUB foo 12 14\r\nNATS/1.0\r\n\r\nhi\r\n\
            HPUB foo r 12 12\r\nNATS/1.0\r\n\r\n\r\n\
            SUB foo.* 1\r\n\
            SUB foo.> workers 2\r\n\
            UNSUB 1\r\n\
            UNSUB 2 10\r\n\
            PING\r\n\
            PONG\r\n";
        assert_eq!(
            run_all_splits(input),
            ok(vec![
                ClientOp::Connect(Bytes::from_static(b"{\"verbose\":false}")),
                pub_op("foo", None, b"hello"),
                pub_op("foo", Some("reply.1"), b""),
                hpub_op("foo", None, b"NATS/1.0\r\n\r\n", b"hi"),
                hpub_op("foo", Some("r"), b"NATS/1.0\r\n\r\n", b""),
                sub_op("foo.*", None, "1"),
                sub_op("foo.>", Some("workers"), "2"),
                unsub_op("1", None),
                unsub_op("2", Some(10)),
                ClientOp::Ping,
                ClientOp::Pong,
            ])
        );
    }

    #[test]
    fn operations_are_case_insensitive() {
        let input = b"connect {}\r\nCoNnEcT {}\r\npub a 1\r\nx\r\nPuB a 1\r\nx\r\n\
            hpub a 12 12\r\nNATS/1.0\r\n\r\n\r\nHpUb a 12 12\r\nNATS/1.0\r\n\r\n\r\n\
            sub a 1\r\nsUb a 1\r\nunsub 1\r\nUnSuB 1\r\nping\r\nPiNg\r\npong\r\npOnG\r\n";
        let out = run_all_splits(input);
        assert_eq!(out.err, None);
        let kinds: Vec<&str> = out
            .ops
            .iter()
            .map(|op| match op {
                ClientOp::Connect(_) => "connect",
                ClientOp::Pub { headers: None, .. } => "pub",
                ClientOp::Pub { .. } => "hpub",
                ClientOp::Sub { .. } => "sub",
                ClientOp::Unsub { .. } => "unsub",
                ClientOp::Ping => "ping",
                ClientOp::Pong => "pong",
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "connect", "connect", "pub", "pub", "hpub", "hpub", "sub", "sub", "unsub", "unsub",
                "ping", "ping", "pong", "pong"
            ]
        );
    }

    #[test]
    fn tabs_and_multiple_blanks_separate_arguments() {
        let input = b"PUB\t \tfoo \t  rep\t\t3 \r\nabc\r\n\
            SUB \t foo\t\tq  \t 9\t\r\n\
            UNSUB\t\t9  \t 4 \r\n\
            HPUB \t a\t\t12  \t12\r\nNATS/1.0\r\n\r\n\r\n\
            CONNECT\t \t{}\r\n";
        assert_eq!(
            run_all_splits(input),
            ok(vec![
                pub_op("foo", Some("rep"), b"abc"),
                sub_op("foo", Some("q"), "9"),
                unsub_op("9", Some(4)),
                hpub_op("a", None, b"NATS/1.0\r\n\r\n", b""),
                ClientOp::Connect(Bytes::from_static(b"{}")),
            ])
        );
    }

    #[test]
    fn bare_newline_ends_control_lines_like_nats_server() {
        let input = b"PUB foo 2\nhi\r\nSUB foo 1\nUNSUB 1\nPING\nPONG\nCONNECT {}\n";
        assert_eq!(
            run_all_splits(input),
            ok(vec![
                pub_op("foo", None, b"hi"),
                sub_op("foo", None, "1"),
                unsub_op("1", None),
                ClientOp::Ping,
                ClientOp::Pong,
                ClientOp::Connect(Bytes::from_static(b"{}")),
            ])
        );
    }

    #[test]
    fn connect_needs_no_blank_after_the_name() {
        assert_eq!(
            run_all_splits(b"CONNECT{\"echo\":true}\r\n"),
            ok(vec![ClientOp::Connect(Bytes::from_static(
                b"{\"echo\":true}"
            ))])
        );
    }

    #[test]
    fn ping_pong_and_ok_ignore_the_rest_of_their_line() {
        assert_eq!(
            run_all_splits(
                b"PING foo bar\r\nPINGPONG\r\nPONG\t\r\r\n+OK whatever\r\n+ok\nPING\r\n"
            ),
            ok(vec![
                ClientOp::Ping,
                ClientOp::Ping,
                ClientOp::Pong,
                ClientOp::Ping
            ])
        );
    }

    #[test]
    fn client_info_is_ignored_unless_its_json_is_bad() {
        assert_eq!(
            run_all_splits(b"INFO {\"server_id\":\"x\"}\r\nPING\r\n"),
            ok(vec![ClientOp::Ping])
        );
        let out = run_all_splits(b"INFO nope\r\nPING\r\n");
        assert!(is_silent_close(&out), "{out:?}");
        assert!(out.ops.is_empty());
    }

    #[test]
    fn client_err_closes_silently() {
        let out = run_all_splits(b"PING\r\n-ERR 'boom'\r\nPING\r\n");
        assert_eq!(out.ops, vec![ClientOp::Ping]);
        assert_eq!(out.err.as_deref(), Some("close: client error: 'boom'"));
        // Without the blank, nats-server's parser fails on the byte after `-ERR`.
        assert_eq!(run_all_splits(b"-ERR\r\n"), failed(vec![], UNKNOWN));
    }

    #[test]
    fn unknown_operations() {
        for input in [
            &b"FOO\r\n"[..],
            b"\r\n",
            b"\n",
            b" PING\r\n",
            b"PUBX foo 1\r\n",
            b"PUB\r\n",
            b"SUB\r\n",
            b"UNSUB\r\n",
            b"HPUB\r\n",
            b"PINX\r\n",
            b"CONNECX {}\r\n",
            b"MSG foo 1 1\r\nx\r\n",
            b"HMSG foo 1 12 12\r\n",
            b"+ER\r\n",
            b"RS+ foo\r\n",
            b"LS+ foo\r\n",
            b"A+ foo\r\n",
        ] {
            assert_eq!(
                run_all_splits(input),
                failed(vec![], UNKNOWN),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn unknown_operation_is_reported_without_waiting_for_a_newline() {
        let mut codec = NatsCodec::new(MAX_PAYLOAD);
        let mut buf = BytesMut::from(&b"PINX"[..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(ProtocolError::UnknownOperation)
        ));
        let mut codec = NatsCodec::new(MAX_PAYLOAD);
        let mut buf = BytesMut::from(&b"PUB"[..]);
        assert!(matches!(codec.decode(&mut buf), Ok(None)));
    }

    #[test]
    fn ops_before_an_error_are_delivered() {
        assert_eq!(
            run_all_splits(b"PING\r\nSUB a 1\r\nXYZ\r\nPING\r\n"),
            failed(vec![ClientOp::Ping, sub_op("a", None, "1")], UNKNOWN)
        );
    }

    #[test]
    fn bad_pub_arguments_close_silently() {
        for input in [
            &b"PUB foo bar\r\n"[..],
            b"PUB foo -1\r\n",
            b"PUB foo +1\r\n",
            b"PUB foo\r\n",
            b"PUB \r\n",
            b"PUB foo 1234567890\r\n",
            b"PUB foo bar baz 1\r\n",
            b"PUB foo 5\r\r\n",
            b"HPUB foo 12\r\n",
            b"HPUB foo x 12\r\n",
            b"HPUB foo 12 x\r\n",
            b"HPUB foo 13 12\r\n",
            b"HPUB foo r -1 12\r\n",
            b"HPUB foo a b 1 2\r\n",
            b"SUB foo\r\n",
            b"SUB \r\n",
            b"SUB a b c d\r\n",
            b"UNSUB \r\n",
            b"UNSUB 1 2 3\r\n",
            b"CONNECT\r\n",
            b"CONNECT \t \r\n",
        ] {
            let out = run_all_splits(input);
            assert!(
                is_silent_close(&out) && out.ops.is_empty(),
                "{:?} -> {out:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn non_utf8_control_line_closes_silently() {
        let out = run_all_splits(b"SUB f\xffo 1\r\n");
        assert!(is_silent_close(&out), "{out:?}");
    }

    #[test]
    fn connect_keeps_any_document_for_the_connection_to_judge() {
        assert_eq!(
            run_all_splits(b"CONNECT not-json \r\n"),
            ok(vec![ClientOp::Connect(Bytes::from_static(b"not-json "))])
        );
    }

    #[test]
    fn unsub_max_follows_parse_size() {
        assert_eq!(
            run_all_splits(b"UNSUB 1 abc\r\nUNSUB 2 0\r\nUNSUB 3 -5\r\nUNSUB 4 1234567890\r\nUNSUB 5 999999999\r\n"),
            ok(vec![
                unsub_op("1", None),
                unsub_op("2", None),
                unsub_op("3", None),
                unsub_op("4", None),
                unsub_op("5", Some(999_999_999)),
            ])
        );
    }

    #[test]
    fn hpub_with_zero_header_length_is_a_plain_pub() {
        assert_eq!(
            run_all_splits(b"HPUB foo 0 2\r\nhi\r\n"),
            ok(vec![pub_op("foo", None, b"hi")])
        );
    }

    #[test]
    fn payload_must_be_followed_by_crlf() {
        for input in [
            &b"PUB foo 2\r\nabc\r\n"[..],
            b"PUB foo 2\r\nab\n",
            b"PUB foo 2\r\nab\rx",
            b"PUB foo 2\r\nab\r\r\n",
            b"HPUB foo 12 12\r\nNATS/1.0\r\n\r\nX\r\n",
        ] {
            assert_eq!(
                run_all_splits(input),
                failed(vec![], UNKNOWN),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn payload_may_contain_crlf_and_protocol_text() {
        let payload = b"PING\r\nPUB x 1\r\n\r\n";
        let mut input = format!("PUB foo {}\r\n", payload.len()).into_bytes();
        input.extend_from_slice(payload);
        input.extend_from_slice(b"\r\nPING\r\n");
        assert_eq!(
            run_all_splits(&input),
            ok(vec![pub_op("foo", None, payload), ClientOp::Ping])
        );
    }

    #[test]
    fn many_ops_in_one_buffer() {
        let mut input = Vec::new();
        let mut expected = Vec::new();
        for i in 0..200 {
            let payload = format!("msg-{i}");
            input.extend_from_slice(
                format!("PUB s.{i} {}\r\n{payload}\r\n", payload.len()).as_bytes(),
            );
            expected.push(pub_op(&format!("s.{i}"), None, payload.as_bytes()));
            input.extend_from_slice(b"PING\r\n");
            expected.push(ClientOp::Ping);
        }
        assert_eq!(run(&input), ok(expected.clone()));
        let mut rng = Lcg(42);
        for max_chunk in [1, 7, 64, 1000] {
            let chunks = chunked(&input, &mut rng, max_chunk);
            assert_eq!(
                run_chunks(&mut NatsCodec::new(MAX_PAYLOAD), &chunks),
                ok(expected.clone())
            );
        }
    }

    #[test]
    fn max_payload_is_checked_on_the_control_line() {
        let at_limit = format!("PUB foo {MAX_PAYLOAD}\r\n");
        let mut codec = NatsCodec::new(MAX_PAYLOAD);
        let mut buf = BytesMut::from(at_limit.as_bytes());
        assert!(matches!(codec.decode(&mut buf), Ok(None)));

        for input in [
            format!("PUB foo {}\r\n", MAX_PAYLOAD + 1),
            format!("PUB foo reply {}\r\n", MAX_PAYLOAD + 1),
            format!("HPUB foo 12 {}\r\n", MAX_PAYLOAD + 1),
        ] {
            // No payload bytes at all: the error must come from the control line alone.
            assert_eq!(
                run_all_splits(input.as_bytes()),
                failed(vec![], MAX_PAYLOAD_ERR)
            );
        }
    }

    #[test]
    fn max_payload_exactly_is_accepted() {
        let payload = vec![b'x'; MAX_PAYLOAD];
        let mut input = format!("PUB foo {MAX_PAYLOAD}\r\n").into_bytes();
        input.extend_from_slice(&payload);
        input.extend_from_slice(b"\r\n");
        assert_eq!(run(&input), ok(vec![pub_op("foo", None, &payload)]));
    }

    #[test]
    fn parse_errors_come_before_max_payload() {
        // nats-server checks `hdr > size` before the payload limit, and closes silently.
        let out = run_all_splits(format!("HPUB foo {} 12\r\n", MAX_PAYLOAD * 2).as_bytes());
        assert!(is_silent_close(&out), "{out:?}");
    }

    #[test]
    fn max_control_line_counts_the_arguments_only() {
        let mcl = 32;
        let arg_at_limit = format!("{} 1", "s".repeat(mcl - 2));
        assert_eq!(arg_at_limit.len(), mcl);
        let mut codec = NatsCodec::with_limits(mcl, MAX_PAYLOAD);
        let line = format!("SUB {arg_at_limit}\r\n");
        assert_eq!(
            run_chunks(&mut codec, &[line.as_bytes()]),
            ok(vec![sub_op(&"s".repeat(mcl - 2), None, "1")])
        );

        let over = format!("SUB {} 1\r\n", "s".repeat(mcl - 1));
        let mut codec = NatsCodec::with_limits(mcl, MAX_PAYLOAD);
        assert_eq!(
            run_chunks(&mut codec, &[over.as_bytes()]),
            failed(vec![], MAX_CONTROL)
        );
        // CONNECT documents are control lines too.
        let connect = format!("CONNECT {{\"name\":\"{}\"}}\r\n", "n".repeat(mcl));
        let mut codec = NatsCodec::with_limits(mcl, MAX_PAYLOAD);
        assert_eq!(
            run_chunks(&mut codec, &[connect.as_bytes()]),
            failed(vec![], MAX_CONTROL)
        );
    }

    #[test]
    fn max_control_line_is_detected_before_the_line_ends() {
        let mut codec = NatsCodec::new(MAX_PAYLOAD);
        let mut buf = BytesMut::from(&b"PUB "[..]);
        assert!(matches!(codec.decode(&mut buf), Ok(None)));
        buf.extend_from_slice(&vec![b'a'; DEFAULT_MAX_CONTROL_LINE]);
        assert!(matches!(codec.decode(&mut buf), Ok(None)));
        buf.extend_from_slice(b"\r");
        assert!(
            matches!(codec.decode(&mut buf), Ok(None)),
            "pending \\r is not counted"
        );
        buf.extend_from_slice(b"b");
        assert!(matches!(
            codec.decode(&mut buf),
            Err(ProtocolError::MaxControlLine)
        ));
    }

    #[test]
    fn leading_blanks_are_not_buffered_forever() {
        let mut codec = NatsCodec::new(MAX_PAYLOAD);
        let mut buf = BytesMut::from(&b"SUB "[..]);
        for _ in 0..10 {
            buf.extend_from_slice(&[b' '; 1000]);
            assert!(matches!(codec.decode(&mut buf), Ok(None)));
            assert!(buf.is_empty());
        }
        buf.extend_from_slice(b"a 1\r\n");
        assert_eq!(
            codec.decode(&mut buf).ok().flatten(),
            Some(sub_op("a", None, "1"))
        );
    }

    #[test]
    fn ping_junk_is_discarded_not_buffered() {
        let mut codec = NatsCodec::new(MAX_PAYLOAD);
        let mut buf = BytesMut::from(&b"PING"[..]);
        for _ in 0..10 {
            buf.extend_from_slice(&[b'z'; 1000]);
            assert!(matches!(codec.decode(&mut buf), Ok(None)));
            assert!(buf.is_empty());
        }
        buf.extend_from_slice(b"\r\n");
        assert_eq!(codec.decode(&mut buf).ok().flatten(), Some(ClientOp::Ping));
    }

    #[test]
    fn payload_is_zero_copy() {
        let input = b"HPUB subject reply 12 17\r\nNATS/1.0\r\n\r\nhello\r\n";
        let mut buf = BytesMut::from(&input[..]);
        let range = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.len();
        let mut codec = NatsCodec::new(MAX_PAYLOAD);
        let Ok(Some(ClientOp::Pub {
            subject,
            reply,
            headers: Some(headers),
            payload,
        })) = codec.decode(&mut buf)
        else {
            panic!("expected a pub");
        };
        for ptr in [
            subject.as_ptr(),
            reply.as_ref().map_or(std::ptr::null(), |r| r.as_ptr()),
            headers.as_ptr(),
            payload.as_ptr(),
        ] {
            assert!(range.contains(&(ptr as usize)), "copied instead of sliced");
        }
        assert_eq!(&payload[..], b"hello");
    }

    #[test]
    fn decode_eof_drops_a_partial_frame_quietly() {
        let mut codec = NatsCodec::new(MAX_PAYLOAD);
        let mut buf = BytesMut::from(&b"PING\r\nPUB foo 10\r\nabc"[..]);
        assert_eq!(
            codec.decode_eof(&mut buf).ok().flatten(),
            Some(ClientOp::Ping)
        );
        assert!(matches!(codec.decode_eof(&mut buf), Ok(None)));
        assert!(buf.is_empty());
    }

    #[test]
    fn err_text_matches_nats_server() {
        assert_eq!(
            ProtocolError::UnknownOperation.err_text(),
            Some("Unknown Protocol Operation")
        );
        assert_eq!(
            ProtocolError::MaxPayload.err_text(),
            Some("Maximum Payload Violation")
        );
        assert_eq!(
            ProtocolError::MaxControlLine.err_text(),
            Some("maximum control line exceeded")
        );
        assert_eq!(ProtocolError::ParseError("x".into()).err_text(), None);
        assert_eq!(ProtocolError::ClientErr("x".into()).err_text(), None);
    }

    fn encode(op: ServerOp) -> Vec<u8> {
        let mut dst = BytesMut::new();
        NatsCodec::new(MAX_PAYLOAD)
            .encode(op, &mut dst)
            .expect("encode never fails");
        dst.to_vec()
    }

    #[test]
    fn hpub_refused_until_headers_are_negotiated() {
        let flag = HeadersFlag::default();
        let mut codec = NatsCodec::new(MAX_PAYLOAD).with_headers_flag(flag.clone());
        // Refused before the arguments are looked at: an oversized HPUB closes silently too.
        let out = run_chunks(&mut codec, &[b"HPUB s 10 999999\r\n"]);
        assert!(out.err.is_some_and(|e| e.starts_with("close:")));
        flag.set(true);
        let mut codec = NatsCodec::new(MAX_PAYLOAD).with_headers_flag(flag);
        let out = run_chunks(&mut codec, &[b"HPUB s 12 14\r\nNATS/1.0\r\n\r\nhi\r\n"]);
        assert_eq!(out.err, None);
        assert_eq!(out.ops.len(), 1);
    }

    #[test]
    fn encoder_is_byte_exact() {
        assert_eq!(
            encode(ServerOp::Info(Bytes::from_static(b"{\"a\":1}"))),
            // nats-server writes a space before the line end.
            b"INFO {\"a\":1} \r\n"
        );
        assert_eq!(encode(ServerOp::Ping), b"PING\r\n");
        assert_eq!(encode(ServerOp::Pong), b"PONG\r\n");
        assert_eq!(encode(ServerOp::Ok), b"+OK\r\n");
        assert_eq!(
            encode(ServerOp::Err("Invalid Subject".into())),
            b"-ERR 'Invalid Subject'\r\n"
        );
        assert_eq!(
            encode(ServerOp::Msg {
                subject: bs("foo.bar"),
                sid: bs("9"),
                reply: None,
                headers: None,
                payload: Bytes::from_static(b"hello"),
            }),
            b"MSG foo.bar 9 5\r\nhello\r\n"
        );
        assert_eq!(
            encode(ServerOp::Msg {
                subject: bs("foo"),
                sid: bs("1"),
                reply: Some(bs("_INBOX.x")),
                headers: None,
                payload: Bytes::new(),
            }),
            b"MSG foo 1 _INBOX.x 0\r\n\r\n"
        );
        assert_eq!(
            encode(ServerOp::Msg {
                subject: bs("SUBJECT"),
                sid: bs("1"),
                reply: Some(bs("REPLY")),
                headers: Some(Bytes::from_static(b"NATS/1.0\r\nHeader: X\r\n\r\n")),
                payload: Bytes::from_static(b"PAYLOAD"),
            }),
            b"HMSG SUBJECT 1 REPLY 23 30\r\nNATS/1.0\r\nHeader: X\r\n\r\nPAYLOAD\r\n"
        );
        assert_eq!(
            encode(ServerOp::Msg {
                subject: bs("s"),
                sid: bs("2"),
                reply: None,
                headers: Some(Bytes::from_static(b"NATS/1.0 503\r\n\r\n")),
                payload: Bytes::new(),
            }),
            b"HMSG s 2 16 16\r\nNATS/1.0 503\r\n\r\n\r\n"
        );
        // An empty header block is no header block (nats-server: `hdr > 0`).
        assert_eq!(
            encode(ServerOp::Msg {
                subject: bs("s"),
                sid: bs("2"),
                reply: None,
                headers: Some(Bytes::new()),
                payload: Bytes::from_static(b"x"),
            }),
            b"MSG s 2 1\r\nx\r\n"
        );
    }

    #[test]
    fn encoder_reserves_exactly_once() {
        for headers in [None, Some(Bytes::from_static(b"NATS/1.0\r\nA: b\r\n\r\n"))] {
            for reply in [None, Some(bs("r"))] {
                let op = ServerOp::Msg {
                    subject: bs("a.b.c"),
                    sid: bs("123"),
                    reply,
                    headers: headers.clone(),
                    payload: Bytes::from(vec![7u8; 1_234_567]),
                };
                let mut dst = BytesMut::new();
                NatsCodec::new(MAX_PAYLOAD)
                    .encode(op, &mut dst)
                    .expect("encode never fails");
                assert_eq!(dst.len(), dst.capacity(), "size estimate must be exact");
            }
        }
    }

    #[test]
    fn put_u64_writes_decimal() {
        for n in [0u64, 1, 9, 10, 99, 100, 12345, u64::MAX] {
            let mut b = BytesMut::new();
            put_u64(&mut b, n);
            assert_eq!(&b[..], n.to_string().as_bytes());
            if let Ok(u) = usize::try_from(n) {
                assert_eq!(digits(u), n.to_string().len());
            }
        }
    }

    /// Test-only client side: writes ops the way a client would, with random keyword case,
    /// random blanks and an optional `\r`.
    fn client_encode(op: &ClientOp, style: u64, out: &mut Vec<u8>) {
        let mut rng = Lcg(style);
        let mut kw = |w: &str, out: &mut Vec<u8>| {
            for c in w.bytes() {
                out.push(if rng.next(2) == 0 {
                    c.to_ascii_lowercase()
                } else {
                    c
                });
            }
        };
        let mut rng2 = Lcg(style ^ 0x5555);
        let mut sep = |out: &mut Vec<u8>| {
            for _ in 0..=rng2.next(3) {
                out.push(if rng2.next(2) == 0 { b' ' } else { b'\t' });
            }
        };
        let eol: &[u8] = if style.is_multiple_of(5) {
            b"\n"
        } else {
            b"\r\n"
        };
        match op {
            ClientOp::Connect(json) => {
                kw("CONNECT", out);
                sep(out);
                out.extend_from_slice(json);
                out.extend_from_slice(eol);
            }
            ClientOp::Pub {
                subject,
                reply,
                headers,
                payload,
            } => {
                kw(if headers.is_some() { "HPUB" } else { "PUB" }, out);
                sep(out);
                out.extend_from_slice(subject.as_bytes());
                if let Some(r) = reply {
                    sep(out);
                    out.extend_from_slice(r.as_bytes());
                }
                let hlen = headers.as_ref().map_or(0, Bytes::len);
                if headers.is_some() {
                    sep(out);
                    out.extend_from_slice(hlen.to_string().as_bytes());
                }
                sep(out);
                out.extend_from_slice((hlen + payload.len()).to_string().as_bytes());
                out.extend_from_slice(eol);
                if let Some(h) = headers {
                    out.extend_from_slice(h);
                }
                out.extend_from_slice(payload);
                out.extend_from_slice(b"\r\n");
            }
            ClientOp::Sub {
                subject,
                queue,
                sid,
            } => {
                kw("SUB", out);
                sep(out);
                out.extend_from_slice(subject.as_bytes());
                if let Some(q) = queue {
                    sep(out);
                    out.extend_from_slice(q.as_bytes());
                }
                sep(out);
                out.extend_from_slice(sid.as_bytes());
                out.extend_from_slice(eol);
            }
            ClientOp::Unsub { sid, max } => {
                kw("UNSUB", out);
                sep(out);
                out.extend_from_slice(sid.as_bytes());
                if let Some(m) = max {
                    sep(out);
                    out.extend_from_slice(m.to_string().as_bytes());
                }
                out.extend_from_slice(eol);
            }
            ClientOp::Ping => {
                kw("PING", out);
                out.extend_from_slice(eol);
            }
            ClientOp::Pong => {
                kw("PONG", out);
                out.extend_from_slice(eol);
            }
        }
    }

    fn token() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("foo".to_string()),
            Just("bar".to_string()),
            Just("*".to_string()),
            Just(">".to_string()),
            Just("_INBOX".to_string()),
            "[a-zA-Z0-9_$-]{1,8}",
        ]
    }

    fn subject() -> impl Strategy<Value = ByteString> {
        prop::collection::vec(token(), 1..5).prop_map(|t| ByteString::from(t.join(".")))
    }

    fn word() -> impl Strategy<Value = ByteString> {
        "[a-zA-Z0-9_.]{1,12}".prop_map(ByteString::from)
    }

    fn payload(max: usize) -> impl Strategy<Value = Bytes> {
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..max),
            prop::collection::vec(prop::sample::select(b"\r\nPUB ".to_vec()), 0..max),
        ]
        .prop_map(Bytes::from)
    }

    fn header_block() -> impl Strategy<Value = Bytes> {
        prop::collection::vec(("[A-Za-z-]{1,10}", "[ -~]{0,20}"), 0..4).prop_map(|kvs| {
            let mut s = String::from("NATS/1.0\r\n");
            for (k, v) in kvs {
                s.push_str(&format!("{k}: {v}\r\n"));
            }
            s.push_str("\r\n");
            Bytes::from(s)
        })
    }

    fn client_op() -> impl Strategy<Value = ClientOp> {
        prop_oneof![
            "\\{[ -~]{0,40}\\}".prop_map(|j| ClientOp::Connect(Bytes::from(j))),
            (
                subject(),
                prop::option::of(subject()),
                prop::option::of(header_block()),
                payload(200)
            )
                .prop_map(|(subject, reply, headers, payload)| ClientOp::Pub {
                    subject,
                    reply,
                    headers,
                    payload
                }),
            (subject(), prop::option::of(word()), word()).prop_map(|(subject, queue, sid)| {
                ClientOp::Sub {
                    subject,
                    queue,
                    sid,
                }
            }),
            (word(), prop::option::of(1u64..1_000_000))
                .prop_map(|(sid, max)| ClientOp::Unsub { sid, max }),
            Just(ClientOp::Ping),
            Just(ClientOp::Pong),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn random_ops_survive_random_chunking(
            ops in prop::collection::vec((client_op(), any::<u64>()), 0..30),
            chunk_seed in any::<u64>(),
            max_chunk in 1usize..64,
        ) {
            let mut wire = Vec::new();
            for (op, style) in &ops {
                client_encode(op, *style, &mut wire);
            }
            let expected: Vec<ClientOp> = ops.into_iter().map(|(op, _)| op).collect();
            let mut rng = Lcg(chunk_seed);
            let chunks = chunked(&wire, &mut rng, max_chunk);
            let out = run_chunks(&mut NatsCodec::new(MAX_PAYLOAD), &chunks);
            prop_assert_eq!(out, ok(expected));
        }
    }
}
