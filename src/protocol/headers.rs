//! NATS message headers (ADR-4): `NATS/1.0[ <code>[ <description>]]\r\n` then `Name: value\r\n`
//! lines and a blank line.
//!
//! Owns: parsing a header block into [`Headers`], building and encoding one, status-only blocks
//! (`NATS/1.0 503\r\n\r\n`), and [`find_header`], an allocation-free lookup over the raw block for
//! hot paths. Does not own: what any header means (JetStream reads `Nats-Msg-Id` and friends).
//!
//! Case: ADR-4 headers are case-preserving. nats-server itself reads headers (e.g. `Nats-Msg-Id`,
//! `Nats-Expected-Last-Sequence`) with an exact-case match on the raw block (`sliceHeader`), which
//! [`find_header`] reproduces. [`Headers::get`] is friendlier: exact case first, then any case.

use bytes::{BufMut, Bytes, BytesMut};

/// The version line prefix every header block starts with.
pub const VERSION_LINE: &str = "NATS/1.0";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("header block does not start with NATS/1.0")]
    MissingVersion,
    #[error("bad status in header version line: {0:?}")]
    BadStatus(String),
    #[error("malformed header line: {0:?}")]
    MalformedLine(String),
    #[error("header block is not utf-8")]
    NotUtf8,
}

/// A parsed header block. Entries keep their order and the case the publisher used.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    /// The inline status code (`NATS/1.0 503`), if any.
    pub status: Option<u16>,
    /// The text after the status code (`No Messages`), if any. Only encoded with a status.
    pub description: Option<String>,
    entries: Vec<(String, String)>,
}

fn trim_blanks(s: &str) -> &str {
    s.trim_matches(|c| c == ' ' || c == '\t')
}

/// Splits `raw` into lines ending in `\n` (a `\r` before it is dropped); a last line without
/// `\n` is returned too.
fn lines(raw: &str) -> impl Iterator<Item = &str> {
    raw.split_inclusive('\n').map(|l| {
        let l = l.strip_suffix('\n').unwrap_or(l);
        l.strip_suffix('\r').unwrap_or(l)
    })
}

/// Parses the part of the version line after `NATS/1.0`.
fn parse_status_text(rest: &str) -> Result<(Option<u16>, Option<&str>), HeaderError> {
    let rest = trim_blanks(rest);
    if rest.is_empty() {
        return Ok((None, None));
    }
    let code = rest
        .get(..3)
        .filter(|c| c.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| HeaderError::BadStatus(rest.to_string()))?;
    let desc = trim_blanks(&rest[3..]);
    Ok((Some(code), (!desc.is_empty()).then_some(desc)))
}

impl Headers {
    pub fn new() -> Self {
        Self::default()
    }

    /// A block with only a status line, e.g. `with_status(404, Some("No Messages"))`.
    pub fn with_status(code: u16, description: Option<&str>) -> Self {
        Self {
            status: Some(code),
            description: description.map(str::to_string),
            entries: Vec::new(),
        }
    }

    /// Parses a raw header block (as carried by `HPUB`/`HMSG`). Tolerates bare `\n` line ends,
    /// a missing final blank line, and folded continuation lines (joined with a space, as Go's
    /// textproto does). Lines with an empty name are skipped like the Go client does.
    pub fn parse(raw: &[u8]) -> Result<Headers, HeaderError> {
        let raw = std::str::from_utf8(raw).map_err(|_| HeaderError::NotUtf8)?;
        let mut it = lines(raw);
        let first = it.next().ok_or(HeaderError::MissingVersion)?;
        let rest = first
            .strip_prefix(VERSION_LINE)
            .ok_or(HeaderError::MissingVersion)?;
        let (status, description) = parse_status_text(rest)?;
        let mut h = Headers {
            status,
            description: description.map(str::to_string),
            entries: Vec::new(),
        };
        let mut last_named = false;
        for line in it {
            if line.is_empty() {
                break;
            }
            if line.starts_with([' ', '\t']) {
                if last_named && let Some((_, v)) = h.entries.last_mut() {
                    let more = trim_blanks(line);
                    if !more.is_empty() {
                        if !v.is_empty() {
                            v.push(' ');
                        }
                        v.push_str(more);
                    }
                    continue;
                }
                return Err(HeaderError::MalformedLine(line.to_string()));
            }
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| HeaderError::MalformedLine(line.to_string()))?;
            if name.is_empty() {
                last_named = false;
                continue;
            }
            if name.contains([' ', '\t']) {
                return Err(HeaderError::MalformedLine(line.to_string()));
            }
            h.entries
                .push((name.to_string(), trim_blanks(value).to_string()));
            last_named = true;
        }
        Ok(h)
    }

    /// The first value under `name`: an exact-case match if there is one, else the first
    /// case-insensitive match.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k == name)
            .or_else(|| {
                self.entries
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
            })
            .map(|(_, v)| v.as_str())
    }

    /// Every value under exactly `name` (ADR-4 `VALUES` is case-sensitive), in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.entries
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Replaces every value under exactly `name` with `value` (ADR-4 `SET`).
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let name = name.into();
        self.entries.retain(|(k, _)| *k != name);
        self.append(name, value);
    }

    /// Adds a value under `name`, keeping existing ones (ADR-4 `APPEND`). Names must not contain
    /// `:` or blanks and values must not contain CR or LF; callers build these from known text.
    pub fn append(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let (name, value) = (name.into(), value.into());
        debug_assert!(!name.is_empty() && !name.contains([':', ' ', '\t', '\r', '\n']));
        debug_assert!(!value.contains(['\r', '\n']));
        self.entries.push((name, value));
    }

    /// Removes every value under exactly `name`; returns how many there were.
    pub fn remove(&mut self, name: &str) -> usize {
        let before = self.entries.len();
        self.entries.retain(|(k, _)| k != name);
        before - self.entries.len()
    }

    /// Entries in order, as (name, value).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of entries (the status line is not an entry).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Exact size of [`Headers::encode`]'s output.
    pub fn encoded_len(&self) -> usize {
        let mut n = VERSION_LINE.len() + 2 + 2;
        if let Some(code) = self.status {
            n += 1 + decimal_len(code);
            if let Some(d) = &self.description {
                n += 1 + d.len();
            }
        }
        for (k, v) in &self.entries {
            n += k.len() + 2 + v.len() + 2;
        }
        n
    }

    /// Appends the encoded block to `dst`.
    pub fn encode_into(&self, dst: &mut BytesMut) {
        dst.reserve(self.encoded_len());
        dst.put_slice(VERSION_LINE.as_bytes());
        if let Some(code) = self.status {
            put_status(dst, code, self.description.as_deref());
        }
        dst.put_slice(b"\r\n");
        for (k, v) in &self.entries {
            dst.put_slice(k.as_bytes());
            dst.put_slice(b": ");
            dst.put_slice(v.as_bytes());
            dst.put_slice(b"\r\n");
        }
        dst.put_slice(b"\r\n");
    }

    /// The block as carried by `HPUB`/`HMSG`: `NATS/1.0[ code[ description]]\r\n`, one
    /// `Name: value\r\n` per entry, then `\r\n`.
    pub fn encode(&self) -> Bytes {
        let mut dst = BytesMut::with_capacity(self.encoded_len());
        self.encode_into(&mut dst);
        dst.freeze()
    }

    /// Same as [`Headers::encode`].
    pub fn to_bytes(&self) -> Bytes {
        self.encode()
    }
}

fn decimal_len(n: u16) -> usize {
    match n {
        0..=9 => 1,
        10..=99 => 2,
        100..=999 => 3,
        1000..=9999 => 4,
        _ => 5,
    }
}

fn put_status(dst: &mut BytesMut, code: u16, description: Option<&str>) {
    dst.put_u8(b' ');
    let mut tmp = [0u8; 5];
    let len = decimal_len(code);
    let mut c = code;
    for slot in tmp[..len].iter_mut().rev() {
        *slot = b'0' + (c % 10) as u8;
        c /= 10;
    }
    dst.put_slice(&tmp[..len]);
    if let Some(d) = description {
        dst.put_u8(b' ');
        dst.put_slice(d.as_bytes());
    }
}

/// A header block holding only a status: `NATS/1.0 503\r\n\r\n`,
/// `NATS/1.0 404 No Messages\r\n\r\n`.
pub fn status_only(code: u16, description: Option<&str>) -> Bytes {
    let len =
        VERSION_LINE.len() + 1 + decimal_len(code) + description.map_or(0, |d| 1 + d.len()) + 4;
    let mut dst = BytesMut::with_capacity(len);
    dst.put_slice(VERSION_LINE.as_bytes());
    put_status(&mut dst, code, description);
    dst.put_slice(b"\r\n\r\n");
    dst.freeze()
}

/// Reads the inline status of a raw block without parsing the rest: `Some((503, None))` for
/// `NATS/1.0 503\r\n…`, None when there is no status or the block is not a header block.
pub fn parse_status(raw: &[u8]) -> Option<(u16, Option<&str>)> {
    let end = raw.iter().position(|&b| b == b'\n').unwrap_or(raw.len());
    let line = raw[..end].strip_suffix(b"\r").unwrap_or(&raw[..end]);
    let rest = std::str::from_utf8(line.strip_prefix(VERSION_LINE.as_bytes())?).ok()?;
    match parse_status_text(rest) {
        Ok((Some(code), desc)) => Some((code, desc)),
        _ => None,
    }
}

/// The value of the first header named exactly `name` in a raw block, the way nats-server's
/// `sliceHeader` finds it: the name must start a line (after `\r\n`, so never the version line)
/// and be followed directly by `:`; leading spaces of the value are skipped, the value runs to
/// the next `\r\n`. No allocation. None if absent or not UTF-8.
pub fn find_header<'a>(raw: &'a [u8], name: &str) -> Option<&'a str> {
    let key = name.as_bytes();
    if key.is_empty() {
        return None;
    }
    let mut pos = 0;
    // Each iteration looks at the line starting right after a `\r\n`.
    while let Some(nl) = find_crlf(raw, pos) {
        let start = nl + 2;
        let line_end = find_crlf(raw, start).unwrap_or(raw.len());
        let line = &raw[start..line_end];
        if line.len() > key.len() && line.starts_with(key) && line[key.len()] == b':' {
            let mut v = &line[key.len() + 1..];
            while let [b' ', rest @ ..] = v {
                v = rest;
            }
            return std::str::from_utf8(v).ok();
        }
        pos = line_end;
    }
    None
}

fn find_crlf(raw: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i + 1 < raw.len() {
        match raw[i + 1] {
            b'\n' if raw[i] == b'\r' => return Some(i),
            b'\r' => i += 1,
            _ => i += 2,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_entries_status_and_description() {
        let h =
            Headers::parse(b"NATS/1.0 404 No Messages\r\nA: 1\r\nB:  two words \r\nA: 3\r\n\r\n")
                .expect("valid block");
        assert_eq!(h.status, Some(404));
        assert_eq!(h.description.as_deref(), Some("No Messages"));
        assert_eq!(h.get("A"), Some("1"));
        assert_eq!(h.get("B"), Some("two words"));
        assert_eq!(h.get_all("A").collect::<Vec<_>>(), ["1", "3"]);
        assert_eq!(h.len(), 3);
    }

    #[test]
    fn parses_plain_and_status_only_blocks() {
        let h = Headers::parse(b"NATS/1.0\r\n\r\n").expect("valid");
        assert_eq!(
            (h.status, h.description.as_deref(), h.len()),
            (None, None, 0)
        );
        let h = Headers::parse(b"NATS/1.0 503\r\n\r\n").expect("valid");
        assert_eq!((h.status, h.description.as_deref()), (Some(503), None));
        let h = Headers::parse(b"NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: 5\r\n\r\n")
            .expect("valid");
        assert_eq!(h.status, Some(100));
        assert_eq!(h.get("Nats-Last-Consumer"), Some("5"));
    }

    #[test]
    fn tolerates_bare_newlines_missing_blank_line_and_folding() {
        let h = Headers::parse(b"NATS/1.0\nA: x\n  continued\nB:y").expect("lenient");
        assert_eq!(h.get("A"), Some("x continued"));
        assert_eq!(h.get("B"), Some("y"));
    }

    #[test]
    fn stops_at_the_blank_line() {
        let h = Headers::parse(b"NATS/1.0\r\nA: 1\r\n\r\nnot a header").expect("valid");
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn rejects_malformed_blocks() {
        assert_eq!(
            Headers::parse(b"HTTP/1.1\r\n\r\n"),
            Err(HeaderError::MissingVersion)
        );
        assert_eq!(Headers::parse(b""), Err(HeaderError::MissingVersion));
        assert!(matches!(
            Headers::parse(b"NATS/1.0 abc\r\n\r\n"),
            Err(HeaderError::BadStatus(_))
        ));
        assert!(matches!(
            Headers::parse(b"NATS/1.0\r\nno colon\r\n\r\n"),
            Err(HeaderError::MalformedLine(_))
        ));
        assert!(matches!(
            Headers::parse(b"NATS/1.0\r\nBad Name: x\r\n\r\n"),
            Err(HeaderError::MalformedLine(_))
        ));
        assert_eq!(
            Headers::parse(b"NATS/1.0\r\nA: \xff\r\n\r\n"),
            Err(HeaderError::NotUtf8)
        );
    }

    #[test]
    fn get_prefers_exact_case_then_any_case() {
        let mut h = Headers::new();
        h.append("nats-msg-id", "lower");
        h.append("Nats-Msg-Id", "exact");
        assert_eq!(h.get("Nats-Msg-Id"), Some("exact"));
        assert_eq!(h.get("nats-msg-id"), Some("lower"));
        assert_eq!(h.get("NATS-MSG-ID"), Some("lower"));
        assert_eq!(h.get("missing"), None);
        assert_eq!(h.get_all("NATS-MSG-ID").count(), 0);
    }

    #[test]
    fn insert_replaces_exact_name_and_append_keeps() {
        let mut h = Headers::new();
        h.append("A", "1");
        h.append("A", "2");
        h.append("a", "lower");
        h.insert("A", "3");
        assert_eq!(h.get_all("A").collect::<Vec<_>>(), ["3"]);
        assert_eq!(h.get("a"), Some("lower"));
        assert_eq!(h.remove("a"), 1);
        assert_eq!(h.remove("a"), 0);
        assert_eq!(h.iter().collect::<Vec<_>>(), [("A", "3")]);
    }

    #[test]
    fn encodes_byte_exact() {
        let mut h = Headers::new();
        h.append("Nats-Msg-Id", "abc");
        h.append("X", "");
        assert_eq!(
            &h.encode()[..],
            b"NATS/1.0\r\nNats-Msg-Id: abc\r\nX: \r\n\r\n"
        );
        assert_eq!(h.encoded_len(), h.encode().len());
        assert_eq!(h.to_bytes(), h.encode());

        let mut h = Headers::with_status(408, Some("Request Timeout"));
        h.append("Nats-Pending-Messages", "1");
        assert_eq!(
            &h.encode()[..],
            b"NATS/1.0 408 Request Timeout\r\nNats-Pending-Messages: 1\r\n\r\n"
        );
        assert_eq!(h.encoded_len(), h.encode().len());
        assert_eq!(&Headers::new().encode()[..], b"NATS/1.0\r\n\r\n");
    }

    #[test]
    fn status_only_blocks() {
        assert_eq!(&status_only(503, None)[..], b"NATS/1.0 503\r\n\r\n");
        assert_eq!(
            &status_only(404, Some("No Messages"))[..],
            b"NATS/1.0 404 No Messages\r\n\r\n"
        );
        assert_eq!(
            status_only(404, Some("No Messages")),
            Headers::with_status(404, Some("No Messages")).encode()
        );
        assert_eq!(&status_only(7, None)[..], b"NATS/1.0 7\r\n\r\n");
    }

    #[test]
    fn parse_status_reads_only_the_first_line() {
        assert_eq!(parse_status(b"NATS/1.0 503\r\n\r\n"), Some((503, None)));
        assert_eq!(
            parse_status(b"NATS/1.0 404 No Messages\r\n\r\n"),
            Some((404, Some("No Messages")))
        );
        assert_eq!(parse_status(b"NATS/1.0\r\nA: 1\r\n\r\n"), None);
        assert_eq!(parse_status(b"garbage"), None);
    }

    #[test]
    fn find_header_behaves_like_slice_header() {
        let raw = b"NATS/1.0\r\nNats-Msg-Id:   id-1 \r\nNats-Expected-Last-Sequence: 42\r\nX-Nats-Msg-Id: no\r\n\r\n";
        assert_eq!(find_header(raw, "Nats-Msg-Id"), Some("id-1 "));
        assert_eq!(find_header(raw, "Nats-Expected-Last-Sequence"), Some("42"));
        // Exact case only, like nats-server's JetStream header reads.
        assert_eq!(find_header(raw, "nats-msg-id"), None);
        // Must start a line and be followed directly by ':'.
        assert_eq!(find_header(raw, "Msg-Id"), None);
        assert_eq!(find_header(raw, "Nats-Msg"), None);
        assert_eq!(find_header(raw, ""), None);
        // The version line is never a header.
        assert_eq!(find_header(b"NATS/1.0:x\r\n\r\n", "NATS/1.0"), None);
        // The first occurrence wins, a last line without CRLF still counts.
        assert_eq!(
            find_header(b"NATS/1.0\r\nA: 1\r\nA: 2\r\n\r\n", "A"),
            Some("1")
        );
        assert_eq!(find_header(b"NATS/1.0\r\nA: tail", "A"), Some("tail"));
        assert_eq!(find_header(b"NATS/1.0\r\nA:", "A"), Some(""));
        // Tabs are not skipped (sliceHeader skips spaces only).
        assert_eq!(find_header(b"NATS/1.0\r\nA:\tv\r\n\r\n", "A"), Some("\tv"));
        assert_eq!(
            find_header(b"NATS/1.0\r\n\r\r\nA: v\r\n\r\n", "A"),
            Some("v")
        );
    }

    fn name() -> impl Strategy<Value = String> {
        "[A-Za-z][A-Za-z0-9-]{0,12}"
    }

    fn value() -> impl Strategy<Value = String> {
        "[!-~]([ -~]{0,20}[!-~])?"
    }

    proptest! {
        #[test]
        fn encode_parse_round_trip(
            entries in prop::collection::vec((name(), value()), 0..8),
            status in prop::option::of((100u16..1000, prop::option::of("[A-Za-z][A-Za-z ]{0,15}[A-Za-z]"))),
        ) {
            let mut h = match &status {
                Some((code, desc)) => Headers::with_status(*code, desc.as_deref()),
                None => Headers::new(),
            };
            for (k, v) in &entries {
                h.append(k.clone(), v.clone());
            }
            let raw = h.encode();
            prop_assert_eq!(raw.len(), h.encoded_len());
            let back = Headers::parse(&raw).expect("own encoding parses");
            prop_assert_eq!(&back, &h);
            for (k, _) in &entries {
                let first = h.get_all(k).next();
                prop_assert_eq!(find_header(&raw, k), first);
            }
        }
    }
}
