//! `$JS.API` request bodies decoded the way nats-server decodes them, so bad bodies get its exact
//! `invalid JSON` answers.
//!
//! Owns: the semantics of nats-server's `unmarshalRequest` (a Go `json.Decoder` with
//! `DisallowUnknownFields`, fed every value in the body in turn: an empty or blank body decodes
//! to nothing, `null` leaves the request as it is, keys match without regard to case, the last
//! duplicate wins) and the texts of Go's errors for the first thing wrong: syntax errors with
//! their offset, `unexpected EOF`, values of the wrong type, unknown fields. Does not own the
//! request types themselves: a decoded body is handed to serde, whose errors remain for what Go
//! would check deeper inside (nested configurations).

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::ApiError;

/// The Go type of a request field, for Go's "cannot unmarshal" messages.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Bool,
    Str,
    /// A signed integer; the name is Go's (`int`, `int64`).
    Int(&'static str),
    /// An unsigned integer (`uint64`).
    Uint(&'static str),
    /// A struct, by Go's qualified name (`server.ConsumerConfig`).
    Object(&'static str),
    /// A Go type with its own `UnmarshalJSON` taking these JSON strings (null included, which it
    /// refuses like any other value).
    Enum(&'static [&'static str]),
    /// Checked by serde only.
    Any,
}

/// A Go request type: `server.<name>`, and its JSON fields (None: fields are not checked, the
/// type is too large to list here and unknown fields pass through to serde).
#[derive(Debug)]
pub struct GoType {
    pub name: &'static str,
    pub fields: Option<&'static [(&'static str, Kind)]>,
}

const PAGED: (&str, Kind) = ("offset", Kind::Int("int"));

pub const STREAM_INFO_REQUEST: GoType = GoType {
    name: "JSApiStreamInfoRequest",
    fields: Some(&[
        PAGED,
        ("deleted_details", Kind::Bool),
        ("subjects_filter", Kind::Str),
    ]),
};
pub const STREAM_NAMES_REQUEST: GoType = GoType {
    name: "JSApiStreamNamesRequest",
    fields: Some(&[PAGED, ("subject", Kind::Str)]),
};
pub const STREAM_LIST_REQUEST: GoType = GoType {
    name: "JSApiStreamListRequest",
    fields: Some(&[PAGED, ("subject", Kind::Str)]),
};
pub const CONSUMERS_REQUEST: GoType = GoType {
    name: "JSApiConsumersRequest",
    fields: Some(&[PAGED]),
};
pub const MSG_GET_REQUEST: GoType = GoType {
    name: "JSApiMsgGetRequest",
    fields: Some(&[
        ("seq", Kind::Uint("uint64")),
        ("last_by_subj", Kind::Str),
        ("next_by_subj", Kind::Str),
        ("batch", Kind::Int("int")),
        ("max_bytes", Kind::Int("int")),
        ("start_time", Kind::Any),
        ("multi_last", Kind::Any),
        ("up_to_seq", Kind::Uint("uint64")),
        ("up_to_time", Kind::Any),
        ("no_hdr", Kind::Bool),
    ]),
};
pub const MSG_DELETE_REQUEST: GoType = GoType {
    name: "JSApiMsgDeleteRequest",
    fields: Some(&[("seq", Kind::Uint("uint64")), ("no_erase", Kind::Bool)]),
};
pub const STREAM_PURGE_REQUEST: GoType = GoType {
    name: "JSApiStreamPurgeRequest",
    fields: Some(&[
        ("seq", Kind::Uint("uint64")),
        ("filter", Kind::Str),
        ("keep", Kind::Uint("uint64")),
    ]),
};
pub const CREATE_CONSUMER_REQUEST: GoType = GoType {
    name: "CreateConsumerRequest",
    fields: Some(&[
        ("stream_name", Kind::Str),
        ("config", Kind::Object("server.ConsumerConfig")),
        ("action", Kind::Any),
        ("pedantic", Kind::Bool),
    ]),
};
/// nats-server's `StreamConfig` fields (every one confirmed known to 2.15.1) and `pedantic`.
pub const STREAM_CONFIG_REQUEST: GoType = GoType {
    name: "StreamConfigRequest",
    fields: Some(&[
        ("name", Kind::Str),
        ("description", Kind::Str),
        ("subjects", Kind::Any),
        (
            "retention",
            Kind::Enum(&["limits", "interest", "workqueue"]),
        ),
        ("max_consumers", Kind::Int("int")),
        ("max_msgs", Kind::Int("int64")),
        ("max_bytes", Kind::Int("int64")),
        ("max_age", Kind::Int("time.Duration")),
        ("max_msgs_per_subject", Kind::Int("int64")),
        ("max_msg_size", Kind::Int("int32")),
        ("discard", Kind::Enum(&["old", "new"])),
        ("storage", Kind::Enum(&["file", "memory"])),
        ("num_replicas", Kind::Int("int")),
        ("no_ack", Kind::Bool),
        ("duplicate_window", Kind::Int("time.Duration")),
        ("placement", Kind::Any),
        ("mirror", Kind::Any),
        ("sources", Kind::Any),
        ("compression", Kind::Any),
        ("first_seq", Kind::Uint("uint64")),
        ("subject_transform", Kind::Any),
        ("republish", Kind::Any),
        ("allow_direct", Kind::Bool),
        ("mirror_direct", Kind::Bool),
        ("discard_new_per_subject", Kind::Bool),
        ("sealed", Kind::Bool),
        ("deny_delete", Kind::Bool),
        ("deny_purge", Kind::Bool),
        ("allow_rollup_hdrs", Kind::Bool),
        ("consumer_limits", Kind::Any),
        ("allow_msg_ttl", Kind::Bool),
        ("subject_delete_marker_ttl", Kind::Int("time.Duration")),
        ("allow_msg_counter", Kind::Bool),
        ("allow_atomic", Kind::Bool),
        ("allow_msg_schedules", Kind::Bool),
        ("persist_mode", Kind::Any),
        ("allow_batched", Kind::Bool),
        ("metadata", Kind::Any),
        ("pedantic", Kind::Bool),
    ]),
};

/// Decodes `body` as nats-server decodes a request of type `ty` into a zero value.
pub fn decode<T: DeserializeOwned>(body: &[u8], ty: &GoType) -> Result<T, ApiError> {
    let merged = merge(body, ty).map_err(ApiError::invalid_json)?;
    serde_json::from_value(Value::Object(merged)).map_err(ApiError::invalid_json)
}

/// Only the checks, for callers that parse the body themselves afterwards.
pub fn check(body: &[u8], ty: &GoType) -> Result<Map<String, Value>, ApiError> {
    merge(body, ty).map_err(ApiError::invalid_json)
}

/// The error of Go's `json.Unmarshal` for a body that is not one JSON value, worded as Go's
/// `SyntaxError.Error()` (no offset, unlike the decoder nats-server uses for `$JS.API`
/// requests); None when the body is well formed. nats-server decodes `CONSUMER.MSG.NEXT` bodies
/// this way.
pub fn unmarshal_syntax_error(body: &[u8]) -> Option<String> {
    let mut p = Parser { s: body, i: 0 };
    p.ws();
    if let Err(e) = p.value() {
        return Some(match e {
            SyntaxError::Eof => "unexpected end of JSON input".to_string(),
            SyntaxError::Char(_, ctx) => format!("invalid character {ctx}"),
            SyntaxError::Escape(text, _) => format!("invalid escape sequence `{text}` in string"),
        });
    }
    p.ws();
    (p.i < body.len()).then(|| {
        format!(
            "invalid character {} after top-level value",
            quote_char(body, p.i)
        )
    })
}

/// nats-server's `isEmptyRequest`: nothing, `{}`, or a JSON object without members.
pub fn is_empty_request(body: &[u8]) -> bool {
    if body.is_empty() || body == b"{}" {
        return true;
    }
    let mut p = Parser { s: body, i: 0 };
    p.ws();
    matches!(p.value(), Ok(J::Obj(m)) if m.is_empty() && { p.ws(); p.i == body.len() })
}

/// nats-server's `isJSONObjectOrArray`: the first non-blank byte is `{` or `[`.
pub fn is_json_object_or_array(body: &[u8]) -> bool {
    body.iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        .is_some_and(|b| *b == b'{' || *b == b'[')
}

/// Every value in `body`, decoded in turn onto one object with canonical keys.
fn merge(body: &[u8], ty: &GoType) -> Result<Map<String, Value>, String> {
    let mut merged = Map::new();
    let mut p = Parser { s: body, i: 0 };
    loop {
        p.ws();
        if p.i == body.len() {
            return Ok(merged);
        }
        let v = p.value().map_err(|e| e.text())?;
        apply(&mut merged, v, ty)?;
    }
}

fn apply(merged: &mut Map<String, Value>, v: J, ty: &GoType) -> Result<(), String> {
    let members = match v {
        J::Null => return Ok(()),
        J::Obj(m) => m,
        other => {
            return Err(format!(
                "json: cannot unmarshal {} into Go value of type server.{}",
                other.kind(),
                ty.name
            ));
        }
    };
    // Go goes on after a bad member and reports the first.
    let mut first_error = None;
    for (key, value) in members {
        let field = match ty.fields {
            None => Some((key.clone(), Kind::Any)),
            Some(fields) => fields
                .iter()
                .find(|(n, _)| *n == key)
                .or_else(|| fields.iter().find(|(n, _)| n.eq_ignore_ascii_case(&key)))
                .map(|(n, k)| (n.to_string(), *k)),
        };
        let Some((name, kind)) = field else {
            first_error.get_or_insert_with(|| format!("json: unknown field {}", go_quote(&key)));
            continue;
        };
        if let (J::Null, Kind::Enum(_)) = (&value, kind) {
            first_error.get_or_insert_with(|| "can not unmarshal \"null\"".to_string());
            continue;
        }
        if matches!(value, J::Null) {
            continue;
        }
        if let Err(e) = check_kind(&value, kind, ty.name, &name) {
            first_error.get_or_insert(e);
            continue;
        }
        merged.insert(name, value.into_value());
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn check_kind(v: &J, kind: Kind, ty: &str, field: &str) -> Result<(), String> {
    let err = |what: String, go: &str| {
        Err(format!(
            "json: cannot unmarshal {what} into Go struct field {ty}.{field} of type {go}"
        ))
    };
    match (kind, v) {
        (Kind::Enum(values), J::Str(s)) if values.contains(&s.as_str()) => Ok(()),
        // The `UnmarshalJSON` of these types quotes the raw JSON it could not take.
        (Kind::Enum(_), J::Str(s)) => Err(format!(
            "can not unmarshal {}",
            go_quote(&format!("\"{s}\""))
        )),
        (Kind::Enum(_), J::Num(n)) => Err(format!("can not unmarshal {}", go_quote(n))),
        (Kind::Enum(_), _) => Err(format!("can not unmarshal {}", go_quote(v.kind()))),
        (Kind::Any, _)
        | (Kind::Bool, J::Bool(_))
        | (Kind::Str, J::Str(_))
        | (Kind::Object(_), J::Obj(_)) => Ok(()),
        (Kind::Int(go), J::Num(n)) => match n.parse::<i64>() {
            Ok(_) => Ok(()),
            Err(_) => err(format!("number {n}"), go),
        },
        (Kind::Uint(go), J::Num(n)) => match n.parse::<u64>() {
            Ok(_) => Ok(()),
            Err(_) => err(format!("number {n}"), go),
        },
        (Kind::Bool, _) => err(v.kind().into(), "bool"),
        (Kind::Str, _) => err(v.kind().into(), "string"),
        (Kind::Int(go) | Kind::Uint(go) | Kind::Object(go), _) => err(v.kind().into(), go),
    }
}

/// Go's `%q` of a string: what `json: unknown field` prints.
fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON value with object members in document order and numbers as written.
#[derive(Debug)]
enum J {
    Null,
    Bool(bool),
    Num(String),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

impl J {
    fn kind(&self) -> &'static str {
        match self {
            J::Null => "null",
            J::Bool(_) => "bool",
            J::Num(_) => "number",
            J::Str(_) => "string",
            J::Arr(_) => "array",
            J::Obj(_) => "object",
        }
    }

    fn into_value(self) -> Value {
        match self {
            J::Null => Value::Null,
            J::Bool(b) => Value::Bool(b),
            J::Num(n) => serde_json::from_str(&n).unwrap_or(Value::Null),
            J::Str(s) => Value::String(s),
            J::Arr(a) => Value::Array(a.into_iter().map(J::into_value).collect()),
            J::Obj(m) => {
                let mut map = Map::new();
                for (k, v) in m {
                    map.insert(k, v.into_value());
                }
                Value::Object(map)
            }
        }
    }
}

/// A syntax error as Go's decoder words it.
enum SyntaxError {
    Eof,
    /// A byte that cannot come here: its index, and the quoted byte with what was expected.
    Char(usize, String),
    /// A bad escape: the text shown and the offset after it.
    Escape(String, usize),
}

impl SyntaxError {
    fn text(&self) -> String {
        match self {
            SyntaxError::Eof => "unexpected EOF".into(),
            SyntaxError::Char(_, _) | SyntaxError::Escape(_, _) => self.with_offset(),
        }
    }

    fn with_offset(&self) -> String {
        match self {
            SyntaxError::Eof => "unexpected EOF".into(),
            SyntaxError::Char(i, ctx) => format!("invalid character {ctx} at offset {}", i + 1),
            SyntaxError::Escape(text, at) => {
                format!("invalid escape sequence `{text}` in string at offset {at}")
            }
        }
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

/// Go's quoting of one offending character: `'x'`, `'\n'`, `'\x01'`, `'\xff'`.
fn quote_char(s: &[u8], i: usize) -> String {
    let b = s[i];
    let inner = match b {
        b'\'' => "\\'".to_string(),
        b'"' => "\"".to_string(),
        b'\\' => "\\\\".to_string(),
        b'\n' => "\\n".to_string(),
        b'\r' => "\\r".to_string(),
        b'\t' => "\\t".to_string(),
        0x07 => "\\a".to_string(),
        0x08 => "\\b".to_string(),
        0x0c => "\\f".to_string(),
        0x0b => "\\v".to_string(),
        b if b < 0x20 || b == 0x7f => format!("\\x{b:02x}"),
        b if b < 0x80 => (b as char).to_string(),
        _ => {
            let end = (i + 4).min(s.len());
            match (1..=end - i)
                .find_map(|n| std::str::from_utf8(&s[i..i + n]).ok())
                .and_then(|t| t.chars().next())
            {
                Some(c) if !c.is_control() => c.to_string(),
                _ => format!("\\x{b:02x}"),
            }
        }
    };
    format!("'{inner}'")
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn bad(&self, what: &str) -> SyntaxError {
        let i = self.i;
        SyntaxError::Char(i, format!("{} {what}", quote_char(self.s, i)))
    }

    fn peek(&self) -> Result<u8, SyntaxError> {
        self.s.get(self.i).copied().ok_or(SyntaxError::Eof)
    }

    fn value(&mut self) -> Result<J, SyntaxError> {
        match self.peek()? {
            b'{' => self.object(),
            b'[' => self.array(),
            b'"' => self.string().map(J::Str),
            b't' => self.literal("true", J::Bool(true)),
            b'f' => self.literal("false", J::Bool(false)),
            b'n' => self.literal("null", J::Null),
            b'-' | b'0'..=b'9' => self.number(),
            _ => Err(self.bad("looking for beginning of value")),
        }
    }

    fn literal(&mut self, word: &'static str, v: J) -> Result<J, SyntaxError> {
        for expect in word.bytes().skip(1) {
            self.i += 1;
            let b = self.peek()?;
            if b != expect {
                return Err(self.bad(&format!(
                    "in literal {word} (expecting {})",
                    quote_char(&[expect], 0)
                )));
            }
        }
        self.i += 1;
        Ok(v)
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while self.i < self.s.len() && self.s[self.i].is_ascii_digit() {
            self.i += 1;
        }
        self.i - start
    }

    /// A number ends at the first byte that cannot continue it; a number cut short by such a
    /// byte (or by the end) is an error in it.
    fn number(&mut self) -> Result<J, SyntaxError> {
        let start = self.i;
        let need_digit = |p: &mut Self| -> Result<(), SyntaxError> {
            match p.s.get(p.i) {
                None => Err(SyntaxError::Eof),
                Some(b) if b.is_ascii_digit() => Ok(()),
                Some(_) => Err(p.bad("in numeric literal")),
            }
        };
        if self.s[self.i] == b'-' {
            self.i += 1;
            need_digit(self)?;
        }
        if self.s[self.i] == b'0' {
            self.i += 1;
        } else {
            self.digits();
        }
        if self.s.get(self.i) == Some(&b'.') {
            self.i += 1;
            need_digit(self)?;
            self.digits();
        }
        if matches!(self.s.get(self.i), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.s.get(self.i), Some(b'+' | b'-')) {
                self.i += 1;
            }
            need_digit(self)?;
            self.digits();
        }
        Ok(J::Num(
            String::from_utf8_lossy(&self.s[start..self.i]).into_owned(),
        ))
    }

    fn hex4(&self, at: usize) -> Option<u32> {
        let h = self.s.get(at..at + 4)?;
        let t = std::str::from_utf8(h).ok()?;
        u32::from_str_radix(t, 16)
            .ok()
            .filter(|_| t.bytes().all(|b| b.is_ascii_hexdigit()))
    }

    fn string(&mut self) -> Result<String, SyntaxError> {
        self.i += 1;
        let mut out: Vec<u8> = Vec::new();
        loop {
            let b = self.peek()?;
            match b {
                b'"' => {
                    self.i += 1;
                    // Go replaces invalid UTF-8 with U+FFFD.
                    return Ok(String::from_utf8_lossy(&out).into_owned());
                }
                b'\\' => {
                    let esc = self.i;
                    let Some(&e) = self.s.get(esc + 1) else {
                        return Err(SyntaxError::Eof);
                    };
                    let simple = match e {
                        b'"' => Some(b'"'),
                        b'\\' => Some(b'\\'),
                        b'/' => Some(b'/'),
                        b'b' => Some(0x08),
                        b'f' => Some(0x0c),
                        b'n' => Some(b'\n'),
                        b'r' => Some(b'\r'),
                        b't' => Some(b'\t'),
                        _ => None,
                    };
                    if let Some(c) = simple {
                        out.push(c);
                        self.i += 2;
                        continue;
                    }
                    if e != b'u' {
                        let text = String::from_utf8_lossy(&self.s[esc..esc + 2]).into_owned();
                        return Err(SyntaxError::Escape(text, esc + 2));
                    }
                    if self.s.len() < esc + 6 {
                        return Err(SyntaxError::Eof);
                    }
                    let Some(cp) = self.hex4(esc + 2) else {
                        let text = String::from_utf8_lossy(&self.s[esc..esc + 6]).into_owned();
                        return Err(SyntaxError::Escape(text, esc + 6));
                    };
                    self.i = esc + 6;
                    let c = if (0xd800..0xdc00).contains(&cp) {
                        // A high surrogate takes a following low one, or becomes U+FFFD.
                        match (
                            self.s.get(self.i) == Some(&b'\\')
                                && self.s.get(self.i + 1) == Some(&b'u'),
                            self.hex4(self.i + 2),
                        ) {
                            (true, Some(lo)) if (0xdc00..0xe000).contains(&lo) => {
                                self.i += 6;
                                char::from_u32(0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00))
                            }
                            _ => None,
                        }
                    } else {
                        char::from_u32(cp)
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.unwrap_or('\u{fffd}').encode_utf8(&mut buf).as_bytes());
                }
                b if b < 0x20 => return Err(self.bad("in string")),
                b => {
                    out.push(b);
                    self.i += 1;
                }
            }
        }
    }

    fn object(&mut self) -> Result<J, SyntaxError> {
        self.i += 1;
        let mut members = Vec::new();
        self.ws();
        if self.peek()? == b'}' {
            self.i += 1;
            return Ok(J::Obj(members));
        }
        loop {
            self.ws();
            if self.peek()? != b'"' {
                return Err(self.bad("looking for beginning of object key string"));
            }
            let key = self.string()?;
            self.ws();
            if self.peek()? != b':' {
                return Err(self.bad("after object key"));
            }
            self.i += 1;
            self.ws();
            let v = self.value()?;
            members.push((key, v));
            self.ws();
            match self.peek()? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    return Ok(J::Obj(members));
                }
                _ => return Err(self.bad("after object key:value pair")),
            }
        }
    }

    fn array(&mut self) -> Result<J, SyntaxError> {
        self.i += 1;
        let mut items = Vec::new();
        self.ws();
        if self.peek()? == b']' {
            self.i += 1;
            return Ok(J::Arr(items));
        }
        loop {
            self.ws();
            items.push(self.value()?);
            self.ws();
            match self.peek()? {
                b',' => self.i += 1,
                b']' => {
                    self.i += 1;
                    return Ok(J::Arr(items));
                }
                _ => return Err(self.bad("after array element")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: &[u8], ty: &GoType) -> String {
        match decode::<Value>(body, ty) {
            Ok(v) => format!("ok {v}"),
            Err(e) => e.description,
        }
    }

    /// Texts confirmed against nats-server 2.15.1 (tests/differential.rs covers them end to end).
    #[test]
    fn go_texts() {
        let t = &STREAM_INFO_REQUEST;
        assert_eq!(err(b"", t), "ok {}");
        assert_eq!(err(b"  ", t), "ok {}");
        assert_eq!(err(b"null", t), "ok {}");
        assert_eq!(err(b"{", t), "invalid JSON: unexpected EOF");
        assert_eq!(
            err(b"garbage", t),
            "invalid JSON: invalid character 'g' looking for beginning of value at offset 1"
        );
        assert_eq!(
            err(b"{\"a\":1,}", t),
            "invalid JSON: invalid character '}' looking for beginning of object key string at offset 8"
        );
        assert_eq!(
            err(b"{\"a\":tru}", t),
            "invalid JSON: invalid character '}' in literal true (expecting 'e') at offset 9"
        );
        assert_eq!(
            err(b"{\"a\":\"\\x\"}", t),
            "invalid JSON: invalid escape sequence `\\x` in string at offset 8"
        );
        assert_eq!(
            err(b"{\"a\":\"\\u12\"}", t),
            "invalid JSON: invalid escape sequence `\\u12\"}` in string at offset 12"
        );
        assert_eq!(
            err(b"\xff", t),
            "invalid JSON: invalid character '\\xff' looking for beginning of value at offset 1"
        );
        assert_eq!(
            err(b"[]", t),
            "invalid JSON: json: cannot unmarshal array into Go value of type server.JSApiStreamInfoRequest"
        );
        assert_eq!(
            err(b"{\"x\":1}", t),
            "invalid JSON: json: unknown field \"x\""
        );
        assert_eq!(
            err(b"{\"offset\":1.5}", t),
            "invalid JSON: json: cannot unmarshal number 1.5 into Go struct field JSApiStreamInfoRequest.offset of type int"
        );
        assert_eq!(
            err(b"{\"offset\":\"s\",\"x\":1}", t),
            "invalid JSON: json: cannot unmarshal string into Go struct field JSApiStreamInfoRequest.offset of type int"
        );
        assert_eq!(err(b"{\"OFFSET\":1}", t), "ok {\"offset\":1}");
        assert_eq!(
            err(b"{\"offset\":1} {\"offset\":2}", t),
            "ok {\"offset\":2}"
        );
        assert_eq!(
            err(b"{}x", t),
            "invalid JSON: invalid character 'x' looking for beginning of value at offset 3"
        );
        assert_eq!(
            err(b"{\"a\":01}", t),
            "invalid JSON: invalid character '1' after object key:value pair at offset 7"
        );
        assert!(is_empty_request(b" { } "));
        assert!(!is_empty_request(b"null"));
        assert!(!is_empty_request(b"[]"));
    }
}
