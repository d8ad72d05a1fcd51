//! The differential corpus: hand-written and generated raw inputs. `%ID%` in an input becomes a
//! token unique to the case, so cases running at the same time never share subjects.
//!
//! Generation is deterministic (combinatorial lists and a fixed-seed LCG): the same names always
//! mean the same bytes, so the allow-list can name cases.

/// How answers are normalised: JetStream answers are compared as JSON (see `normalise_json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Protocol,
    JetStream,
}

/// State a case needs in both servers, created through async-nats before any case runs. Ordered
/// so streams come before their consumers and messages.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Setup {
    Stream { name: String, subject: String },
    Consumer { stream: String, durable: String },
    Publish { subject: String, count: usize },
}

#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub category: &'static str,
    pub kind: Kind,
    pub input: Vec<u8>,
    pub setup: Vec<Setup>,
}

/// CONNECT prefixes a protocol case is tried under; `pre` sends none (nats-server is verbose and
/// pedantic until CONNECT says otherwise, and headers are off).
const PRE: (&str, &[u8]) = ("pre", b"");
const QUIET: (&str, &[u8]) = (
    "quiet",
    b"CONNECT {\"verbose\":false,\"pedantic\":false,\"headers\":true}\r\n",
);
const VERBOSE: (&str, &[u8]) = (
    "verbose",
    b"CONNECT {\"verbose\":true,\"pedantic\":false,\"headers\":true}\r\n",
);
const PEDANTIC: (&str, &[u8]) = (
    "pedantic",
    b"CONNECT {\"verbose\":false,\"pedantic\":true,\"headers\":true}\r\n",
);
const NO_HEADERS: (&str, &[u8]) = (
    "nohdr",
    b"CONNECT {\"verbose\":false,\"pedantic\":false,\"headers\":false}\r\n",
);

struct Builder {
    cases: Vec<Case>,
}

impl Builder {
    fn proto(&mut self, category: &'static str, name: String, input: Vec<u8>) {
        self.cases.push(Case {
            name,
            category,
            kind: Kind::Protocol,
            input,
            setup: Vec::new(),
        });
    }

    /// One case per prefix: `<category>/<prefix>/<label>`.
    fn family(
        &mut self,
        category: &'static str,
        prefixes: &[(&str, &[u8])],
        before: &[u8],
        items: &[(&str, &[u8])],
    ) {
        for (pname, prefix) in prefixes {
            for (label, body) in items {
                let mut input = prefix.to_vec();
                input.extend_from_slice(before);
                input.extend_from_slice(body);
                self.proto(category, format!("{category}/{pname}/{label}"), input);
            }
        }
    }

    fn js(&mut self, name: String, api: &str, body: &[u8], setup: Vec<Setup>) {
        let connect = b"CONNECT {\"verbose\":false,\"headers\":true}\r\n";
        self.js_with(name, connect, api, body, setup);
    }

    fn js_with(&mut self, name: String, connect: &[u8], api: &str, body: &[u8], setup: Vec<Setup>) {
        let mut input = connect.to_vec();
        input.extend_from_slice(b"SUB _INBOX.%ID% 1\r\n");
        input.extend_from_slice(
            format!("PUB $JS.API.{api} _INBOX.%ID% {}\r\n", body.len()).as_bytes(),
        );
        input.extend_from_slice(body);
        input.extend_from_slice(b"\r\n");
        self.cases.push(Case {
            name,
            category: "jetstream",
            kind: Kind::JetStream,
            input,
            setup,
        });
    }
}

fn pub_items() -> Vec<(&'static str, &'static [u8])> {
    vec![
        ("valid", b"PUB %ID%.a 5\r\nhello\r\nPING\r\n"),
        ("valid-reply", b"PUB %ID%.a r.%ID% 5\r\nhello\r\nPING\r\n"),
        ("truncated-payload", b"PUB %ID%.a 5\r\nhel"),
        ("long-payload", b"PUB %ID%.a 5\r\nhello world\r\nPING\r\n"),
        ("payload-bare-lf", b"PUB %ID%.a 5\r\nhello\nPING\r\n"),
        ("payload-bare-cr", b"PUB %ID%.a 5\r\nhello\rPING\r\n"),
        ("max-payload-truncated", b"PUB %ID%.a 1048576\r\n"),
        ("max-payload-plus-one", b"PUB %ID%.a 1048577\r\n"),
        ("nine-digits", b"PUB %ID%.a 999999999\r\n"),
        ("ten-digits", b"PUB %ID%.a 1000000000\r\n"),
        ("negative-size", b"PUB %ID%.a -1\r\n"),
        ("alpha-size", b"PUB %ID%.a abc\r\n"),
        ("no-size", b"PUB %ID%.a\r\n"),
        ("no-args", b"PUB\r\n"),
        ("blank-args", b"PUB \r\n"),
        ("too-many-args", b"PUB %ID%.a r x 5\r\n"),
        ("star-subject", b"PUB %ID%.* 1\r\na\r\nPING\r\n"),
        ("gt-subject", b"PUB %ID%.> 1\r\na\r\nPING\r\n"),
        ("empty-token", b"PUB %ID%..a 1\r\na\r\nPING\r\n"),
        ("leading-dot", b"PUB .%ID% 1\r\na\r\nPING\r\n"),
        ("trailing-dot", b"PUB %ID%. 1\r\na\r\nPING\r\n"),
        ("star-reply", b"PUB %ID%.a r.* 1\r\na\r\nPING\r\n"),
        ("zero-size", b"PUB %ID%.a 0\r\n\r\nPING\r\n"),
        ("tabs", b"PUB\t%ID%.a\t1\r\na\r\nPING\r\n"),
        ("bare-lf-line", b"PUB %ID%.a 1\na\r\nPING\r\n"),
        ("lowercase", b"pub %ID%.a 1\r\na\r\nping\r\n"),
        ("extra-blanks", b"PUB  %ID%.a   1  \r\na\r\nPING\r\n"),
        ("leading-zero-size", b"PUB %ID%.a 01\r\na\r\nPING\r\n"),
        ("plus-size", b"PUB %ID%.a +1\r\n"),
        ("unknown-pubx", b"PUBX %ID%.a 1\r\n"),
        ("no-space", b"PUB%ID%.a 1\r\n"),
        ("payload-no-terminator", b"PUB %ID%.a 1\r\na"),
        ("star-inside-token", b"PUB %ID%.a* 1\r\na\r\nPING\r\n"),
        ("gt-not-last", b"PUB %ID%.>.a 1\r\na\r\nPING\r\n"),
        (
            "two-pubs",
            b"PUB %ID%.a 1\r\na\r\nPUB %ID%.b 1\r\nb\r\nPING\r\n",
        ),
    ]
}

fn hpub_items() -> Vec<(&'static str, &'static [u8])> {
    vec![
        (
            "valid",
            b"HPUB %ID%.a 12 14\r\nNATS/1.0\r\n\r\nhi\r\nPING\r\n",
        ),
        (
            "valid-kv",
            b"HPUB %ID%.a r.%ID% 18 20\r\nNATS/1.0\r\nK: v\r\n\r\nhi\r\nPING\r\n",
        ),
        ("hdr-above-total", b"HPUB %ID%.a 20 14\r\n"),
        ("hdr-zero", b"HPUB %ID%.a 0 2\r\nhi\r\nPING\r\n"),
        (
            "not-nats-version",
            b"HPUB %ID%.a 12 14\r\nHTTP/1.1\r\n\r\nhi\r\nPING\r\n",
        ),
        (
            "no-blank-line",
            b"HPUB %ID%.a 10 12\r\nNATS/1.0\r\nhi\r\nPING\r\n",
        ),
        (
            "line-without-colon",
            b"HPUB %ID%.a 21 23\r\nNATS/1.0\r\nnocolon\r\n\r\nhi\r\nPING\r\n",
        ),
        (
            "status-line",
            b"HPUB %ID%.a 16 18\r\nNATS/1.0 503\r\n\r\nhi\r\nPING\r\n",
        ),
        (
            "non-utf8-value",
            b"HPUB %ID%.a 18 20\r\nNATS/1.0\r\nK: \xff\r\n\r\nhi\r\nPING\r\n",
        ),
        ("truncated-block", b"HPUB %ID%.a 12 14\r\nNATS/1"),
        ("oversized", b"HPUB %ID%.a 10 1048577\r\n"),
        ("missing-total", b"HPUB %ID%.a 12\r\n"),
        ("alpha-hdr", b"HPUB %ID%.a x 14\r\n"),
        ("too-many-args", b"HPUB %ID%.a r s 12 14\r\n"),
        (
            "hdr-equals-total",
            b"HPUB %ID%.a 12 12\r\nNATS/1.0\r\n\r\n\r\nPING\r\n",
        ),
        (
            "key-with-space",
            b"HPUB %ID%.a 20 22\r\nNATS/1.0\r\nK V: x\r\n\r\nhi\r\nPING\r\n",
        ),
        (
            "lowercase",
            b"hpub %ID%.a 12 14\r\nNATS/1.0\r\n\r\nhi\r\nPING\r\n",
        ),
        (
            "star-subject",
            b"HPUB %ID%.* 12 14\r\nNATS/1.0\r\n\r\nhi\r\nPING\r\n",
        ),
        (
            "long-payload",
            b"HPUB %ID%.a 12 14\r\nNATS/1.0\r\n\r\nhi there\r\nPING\r\n",
        ),
        (
            "crlf-only-block",
            b"HPUB %ID%.a 4 4\r\n\r\n\r\n\r\nPING\r\n",
        ),
        ("no-args", b"HPUB\r\n"),
        ("no-space", b"HPUB%ID%.a 12 14\r\n"),
        ("hdr-size-ten-digits", b"HPUB %ID%.a 1000000000 14\r\n"),
    ]
}

fn sub_items() -> Vec<(&'static str, &'static [u8])> {
    vec![
        ("empty-token", b"SUB %ID%..a 1\r\nPING\r\n"),
        ("missing-sid", b"SUB %ID%.a\r\n"),
        ("queue", b"SUB %ID%.a q 1\r\nPING\r\n"),
        ("too-many-args", b"SUB %ID%.a q q2 1\r\n"),
        ("star", b"SUB %ID%.* 1\r\nPING\r\n"),
        ("star-inside-token", b"SUB %ID%.a* 1\r\nPING\r\n"),
        ("gt-first", b"SUB >.%ID% 1\r\nPING\r\n"),
        ("gt-not-last", b"SUB %ID%.>.a 1\r\nPING\r\n"),
        ("duplicate-sid", b"SUB %ID%.a 1\r\nSUB %ID%.b 1\r\nPING\r\n"),
        ("star-queue", b"SUB %ID%.a q.* 1\r\nPING\r\n"),
        ("unsub-no-args", b"UNSUB\r\n"),
        ("unsub-unknown", b"UNSUB 1\r\nPING\r\n"),
        ("unsub-alpha-max", b"UNSUB 1 x\r\nPING\r\n"),
        ("unsub-too-many", b"UNSUB 1 2 3\r\n"),
        ("blank-args", b"SUB  \r\n"),
        ("trailing-blank", b"SUB %ID%.a 1 \r\nPING\r\n"),
        ("tab", b"SUB %ID%.a\t1\r\nPING\r\n"),
        ("dot-only", b"SUB . 1\r\nPING\r\n"),
        ("trailing-dot", b"SUB %ID%. 1\r\nPING\r\n"),
        (
            "unsub-max-then-two",
            b"SUB %ID%.a 1\r\nUNSUB 1 1\r\nPUB %ID%.a 1\r\na\r\nPUB %ID%.a 1\r\nb\r\nPING\r\n",
        ),
        ("four-args", b"SUB %ID% a b c\r\n"),
        ("no-space", b"SUB%ID%.a 1\r\n"),
        ("lowercase", b"sub %ID%.a 1\r\nping\r\n"),
        ("unsub-zero-max", b"SUB %ID%.a 1\r\nUNSUB 1 0\r\nPING\r\n"),
        ("unsub-no-space", b"UNSUB1\r\n"),
        (
            "sub-then-pub",
            b"SUB %ID%.a 1\r\nPUB %ID%.a 2\r\nok\r\nPING\r\n",
        ),
    ]
}

fn utf8_items() -> Vec<(&'static str, &'static [u8])> {
    vec![
        ("pub-ff", b"PUB %ID%.\xff 1\r\na\r\nPING\r\n"),
        ("pub-bad-seq", b"PUB %ID%.\xc3\x28 1\r\na\r\nPING\r\n"),
        ("pub-cut-seq", b"PUB %ID%.\xe2\x82 1\r\na\r\nPING\r\n"),
        ("pub-nul", b"PUB %ID%.\x00 1\r\na\r\nPING\r\n"),
        ("pub-del", b"PUB %ID%.\x7f 1\r\na\r\nPING\r\n"),
        (
            "pub-utf8-e-acute",
            b"SUB %ID%.\xc3\xa9 1\r\nPUB %ID%.\xc3\xa9 1\r\na\r\nPING\r\n",
        ),
        ("pub-reply-ff", b"PUB %ID%.a r\xff 1\r\na\r\nPING\r\n"),
        ("sub-ff", b"SUB %ID%.\xff 1\r\nPING\r\n"),
        ("sub-queue-ff", b"SUB %ID%.a q\xff 1\r\nPING\r\n"),
        ("sub-sid-ff", b"SUB %ID%.a \xff\r\nPING\r\n"),
        ("unsub-sid-ff", b"UNSUB \xff\r\nPING\r\n"),
        (
            "hpub-ff",
            b"HPUB %ID%.\xff 12 14\r\nNATS/1.0\r\n\r\nhi\r\nPING\r\n",
        ),
        ("payload-ff", b"PUB %ID%.a 1\r\n\xff\r\nPING\r\n"),
        ("sub-surrogate", b"SUB %ID%.\xed\xa0\x80 1\r\nPING\r\n"),
        ("pub-overlong", b"PUB %ID%.\xc0\xaf 1\r\na\r\nPING\r\n"),
    ]
}

fn op_items() -> Vec<(&'static str, &'static [u8])> {
    vec![
        ("foo", b"FOO bar\r\n"),
        ("empty-line", b"\r\n"),
        ("bare-lf", b"\n"),
        ("leading-space", b" PING\r\n"),
        ("leading-tab", b"\tPING\r\n"),
        ("pingx", b"PINGX\r\n"),
        ("ping-extra", b"PING extra\r\n"),
        ("ping-cr-only", b"PING\rPING\r\n"),
        ("mixed-case-ping", b"PiNg\r\n"),
        ("pongx", b"PONGX\r\nPING\r\n"),
        ("plus-ok", b"+OK\r\nPING\r\n"),
        ("plus-okay", b"+OKAY\r\nPING\r\n"),
        ("plus-o", b"+O\r\n"),
        ("plus-x", b"+X\r\n"),
        ("minus-err", b"-ERR 'x'\r\nPING\r\n"),
        ("minus-err-bare", b"-ERR\r\nPING\r\n"),
        ("minus-errx", b"-ERRx\r\n"),
        ("minus-x", b"-X\r\n"),
        ("info-empty-object", b"INFO {}\r\nPING\r\n"),
        ("info-bad", b"INFO bad\r\nPING\r\n"),
        ("info-bare", b"INFO\r\nPING\r\n"),
        ("msg", b"MSG %ID% 1 1\r\na\r\n"),
        ("hmsg", b"HMSG %ID% 1 12 12\r\nNATS/1.0\r\n\r\n\r\n"),
        ("connec", b"CONNEC {}\r\n"),
        ("nul", b"\x00"),
        ("ff", b"\xff"),
        ("p-cr-lf", b"P\r\n"),
        ("pu-cr-lf", b"PU\r\n"),
        ("c-cr-lf", b"C\r\n"),
        ("subx", b"SUBX %ID% 1\r\n"),
        ("unsubx", b"UNSUBX 1\r\n"),
        ("digit", b"1\r\n"),
        ("http-get", b"GET / HTTP/1.1\r\n\r\n"),
        ("tls-hello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"),
        ("pong-then-ping", b"PONG\r\nPING\r\n"),
        ("ping-no-newline", b"PING"),
        ("many-pings", b"PING\r\nPING\r\nPING\r\n"),
        ("sub-missing-line-end", b"SUB %ID% 1"),
    ]
}

/// CONNECT documents, each followed by PING (so an open connection answers PONG).
fn connect_items() -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    for p in [
        "0", "1", "2", "99", "255", "256", "-1", "null", "[]", "{}", "\"1\"", "1.5", "1e2", "01",
    ] {
        out.push((
            format!("protocol-{p}"),
            format!("CONNECT {{\"protocol\":{p}}}\r\nPING\r\n").into_bytes(),
        ));
    }
    let docs: &[(&str, &[u8])] = &[
        ("bad-json", b"{bad"),
        ("empty", b""),
        ("array", b"[]"),
        ("null", b"null"),
        ("string", b"\"x\""),
        ("number", b"1"),
        ("empty-object", b"{}"),
        ("verbose", b"{\"verbose\":true}"),
        ("quiet-pedantic", b"{\"verbose\":false,\"pedantic\":true}"),
        ("duplicate-key", b"{\"verbose\":false,\"verbose\":true}"),
        ("upper-case-key", b"{\"VERBOSE\":false}"),
        ("verbose-null", b"{\"verbose\":null}"),
        ("verbose-number", b"{\"verbose\":1}"),
        ("verbose-string", b"{\"verbose\":\"true\"}"),
        (
            "no-responders-no-headers",
            b"{\"verbose\":false,\"no_responders\":true}",
        ),
        (
            "no-responders-headers-false",
            b"{\"verbose\":false,\"headers\":false,\"no_responders\":true}",
        ),
        (
            "no-responders-headers",
            b"{\"verbose\":false,\"headers\":true,\"no_responders\":true}",
        ),
        ("trailing-garbage", b"{}garbage"),
        ("two-documents", b"{} {}"),
        ("non-utf8-name", b"{\"name\":\"\xff\"}"),
        ("name-number", b"{\"name\":5}"),
        ("name-null", b"{\"name\":null}"),
        ("lang-array", b"{\"lang\":[]}"),
        ("tls-required", b"{\"tls_required\":true}"),
        ("user-pass", b"{\"user\":\"a\",\"pass\":\"b\"}"),
        ("auth-token", b"{\"auth_token\":\"x\"}"),
        ("jwt", b"{\"jwt\":\"x\"}"),
        ("sig-number", b"{\"sig\":1}"),
        ("account", b"{\"account\":\"A\"}"),
        ("new-account", b"{\"new_account\":true}"),
        ("echo-null", b"{\"echo\":null}"),
        ("headers-null", b"{\"headers\":null}"),
        ("unknown-field", b"{\"foo\":[1,2,{\"x\":null}]}"),
        ("unterminated-array", b"{\"foo\":[1,2"),
        ("escaped-key", b"{\"verb\\u006fse\":false}"),
        ("whitespace", b"  {  }  "),
        (
            "nested-deep",
            b"{\"a\":[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]}",
        ),
    ];
    for (label, doc) in docs {
        let mut input = b"CONNECT ".to_vec();
        input.extend_from_slice(doc);
        input.extend_from_slice(b"\r\nPING\r\n");
        out.push((label.to_string(), input));
    }
    let raw: &[(&str, &[u8])] = &[
        ("no-space", b"CONNECT{}\r\nPING\r\n"),
        ("lowercase", b"connect {}\r\nPING\r\n"),
        ("tab", b"CONNECT\t{}\r\nPING\r\n"),
        ("bare", b"CONNECT\r\nPING\r\n"),
        ("blank", b"CONNECT \r\nPING\r\n"),
        (
            "twice",
            b"CONNECT {\"verbose\":false}\r\nCONNECT {\"verbose\":true}\r\nPING\r\n",
        ),
        (
            "echo-false-self",
            b"CONNECT {\"verbose\":false,\"echo\":false}\r\nSUB %ID% 1\r\nPUB %ID% 1\r\na\r\nPING\r\n",
        ),
        (
            "headers-then-hpub-plain-sub",
            b"CONNECT {\"verbose\":false,\"headers\":false}\r\nSUB %ID% 1\r\nHPUB %ID% 12 14\r\nNATS/1.0\r\n\r\nhi\r\nPING\r\n",
        ),
        (
            "verbose-then-bad-pub",
            b"CONNECT {\"verbose\":true}\r\nPUB %ID% x\r\n",
        ),
        (
            "verbose-then-unknown",
            b"CONNECT {\"verbose\":true}\r\nFOO\r\n",
        ),
        (
            "verbose-then-bad-sub",
            b"CONNECT {\"verbose\":true}\r\nSUB %ID%..a 1\r\nPING\r\n",
        ),
        (
            "verbose-then-oversized",
            b"CONNECT {\"verbose\":true}\r\nPUB %ID% 1048577\r\n",
        ),
        (
            "protocol-1-verbose-false",
            b"CONNECT {\"protocol\":1,\"verbose\":false}\r\nPING\r\n",
        ),
        ("cr-only", b"CONNECT {}\rPING\r\n"),
        ("lf-only", b"CONNECT {}\nPING\r\n"),
    ];
    for (label, input) in raw {
        out.push((label.to_string(), input.to_vec()));
    }
    out
}

fn control_line_items() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let long = |prefix: &str, n: usize, suffix: &str| {
        let mut v = prefix.as_bytes().to_vec();
        v.extend(std::iter::repeat_n(b'a', n));
        v.extend_from_slice(suffix.as_bytes());
        v
    };
    out.push(("pub-4096-unterminated".into(), long("PUB ", 4096, "")));
    out.push(("pub-4097-unterminated".into(), long("PUB ", 4097, "")));
    out.push(("pub-5000".into(), long("PUB ", 5000, " 1\r\na\r\n")));
    out.push((
        "pub-4000-terminated".into(),
        long("PUB %ID%.", 4000, " 1\r\na\r\nPING\r\n"),
    ));
    out.push((
        "sub-4094".into(),
        long("SUB %ID%.", 4094 - 9, " 1\r\nPING\r\n"),
    ));
    out.push(("sub-5000".into(), long("SUB %ID%.", 5000, " 1\r\nPING\r\n")));
    out.push((
        "connect-5000".into(),
        long("CONNECT {\"name\":\"", 5000, "\"}\r\nPING\r\n"),
    ));
    out.push((
        "ping-5000-trailing".into(),
        long("PING ", 5000, "\r\nPING\r\n"),
    ));
    out.push(("unsub-5000".into(), long("UNSUB ", 5000, "\r\n")));
    out.push(("blank-run-5000".into(), {
        let mut v = b"PUB".to_vec();
        v.extend(std::iter::repeat_n(b' ', 5000));
        v
    }));
    out.push(("pub-4096-cr".into(), long("PUB ", 4096, "\r")));
    out
}

/// A fixed-seed LCG: the same corpus on every run without a dependency.
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

/// Mutations of valid frames: truncations, replaced, dropped and doubled bytes. Bytes of the
/// `%ID%` token are never touched, so every case keeps its own subjects.
fn generated() -> Vec<(String, Vec<u8>)> {
    const SEEDS: &[&[u8]] = &[
        b"PUB %ID%.a r.%ID% 5\r\nhello\r\n",
        b"HPUB %ID%.a 18 20\r\nNATS/1.0\r\nK: v\r\n\r\nhi\r\n",
        b"SUB %ID%.a q 7\r\n",
        b"UNSUB 9 5\r\n",
        b"CONNECT {\"verbose\":true,\"headers\":true}\r\n",
    ];
    const BYTES: &[u8] = b" \t\r\n*>.09x-\xff\x00{}\"";
    let mut rng = Lcg(0x5eed_d1ff);
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    let prefix = b"CONNECT {\"verbose\":false,\"headers\":true}\r\nSUB %ID%.> 9\r\n";
    let mut attempts = 0;
    while out.len() < 120 && attempts < 10_000 {
        attempts += 1;
        let seed = SEEDS[rng.next(SEEDS.len())];
        let protected: Vec<bool> = {
            let mut p = vec![false; seed.len()];
            let mut i = 0;
            while i + 4 <= seed.len() {
                if &seed[i..i + 4] == b"%ID%" {
                    p[i..i + 4].iter_mut().for_each(|b| *b = true);
                    i += 4;
                } else {
                    i += 1;
                }
            }
            p
        };
        let pos = rng.next(seed.len());
        if protected[pos] {
            continue;
        }
        let mut m = seed.to_vec();
        let what = match rng.next(4) {
            0 => {
                m.truncate(pos);
                "cut"
            }
            1 => {
                m[pos] = BYTES[rng.next(BYTES.len())];
                "set"
            }
            2 => {
                m.remove(pos);
                "del"
            }
            _ => {
                m.insert(pos, m[pos]);
                "dup"
            }
        };
        if m == seed || !seen.insert(m.clone()) {
            continue;
        }
        let mut input = prefix.to_vec();
        input.extend_from_slice(&m);
        input.extend_from_slice(b"PING\r\n");
        out.push((format!("{what}-{:03}", out.len()), input));
    }
    out
}

fn jetstream(b: &mut Builder) {
    let stream = |name: &str, subject: &str| Setup::Stream {
        name: name.into(),
        subject: subject.into(),
    };
    let diff = vec![
        stream("DIFF", "diff.>"),
        Setup::Publish {
            subject: "diff.a".into(),
            count: 3,
        },
    ];
    let cons = vec![
        stream("CONS", "cons.>"),
        Setup::Consumer {
            stream: "CONS".into(),
            durable: "D1".into(),
        },
    ];
    let bodies: &[(&str, &[u8])] = &[
        ("empty", b""),
        ("null", b"null"),
        ("array", b"[]"),
        ("garbage", b"garbage"),
        ("open-brace", b"{"),
        ("empty-object", b"{}"),
        ("string", b"\"s\""),
        ("number", b"1"),
        ("unknown-field", b"{\"x\":1}"),
        ("trailing-comma", b"{\"a\":1,}"),
        ("non-utf8", b"\xff"),
        ("spaces", b"   "),
    ];
    let apis: Vec<(&str, String, Vec<Setup>)> = vec![
        ("info", "INFO".into(), vec![]),
        ("stream-create-new", "STREAM.CREATE.%ID%".into(), vec![]),
        (
            "stream-create-existing",
            "STREAM.CREATE.DIFF".into(),
            diff.clone(),
        ),
        ("stream-update", "STREAM.UPDATE.DIFF".into(), diff.clone()),
        ("stream-update-missing", "STREAM.UPDATE.NOPE".into(), vec![]),
        ("stream-info", "STREAM.INFO.DIFF".into(), diff.clone()),
        ("stream-info-missing", "STREAM.INFO.NOPE".into(), vec![]),
        ("stream-names", "STREAM.NAMES".into(), vec![]),
        ("stream-list", "STREAM.LIST".into(), vec![]),
        ("stream-delete-missing", "STREAM.DELETE.NOPE".into(), vec![]),
        (
            "stream-purge",
            "STREAM.PURGE.PURGE".into(),
            vec![stream("PURGE", "purge.>")],
        ),
        ("stream-purge-missing", "STREAM.PURGE.NOPE".into(), vec![]),
        ("msg-get", "STREAM.MSG.GET.DIFF".into(), diff.clone()),
        ("msg-get-missing", "STREAM.MSG.GET.NOPE".into(), vec![]),
        (
            "msg-delete",
            "STREAM.MSG.DELETE.MDEL".into(),
            vec![stream("MDEL", "mdel.>")],
        ),
        (
            "msg-delete-missing",
            "STREAM.MSG.DELETE.NOPE".into(),
            vec![],
        ),
        (
            "consumer-create",
            "CONSUMER.CREATE.CONS".into(),
            cons.clone(),
        ),
        (
            "consumer-create-named",
            "CONSUMER.CREATE.CONS.%ID%".into(),
            cons.clone(),
        ),
        (
            "consumer-create-missing",
            "CONSUMER.CREATE.NOPE".into(),
            vec![],
        ),
        (
            "consumer-durable-create",
            "CONSUMER.DURABLE.CREATE.CONS.%ID%".into(),
            cons.clone(),
        ),
        (
            "consumer-info",
            "CONSUMER.INFO.CONS.D1".into(),
            cons.clone(),
        ),
        (
            "consumer-info-missing",
            "CONSUMER.INFO.CONS.NOPE".into(),
            cons.clone(),
        ),
        (
            "consumer-delete-missing",
            "CONSUMER.DELETE.CONS.NOPE".into(),
            cons.clone(),
        ),
        ("consumer-names", "CONSUMER.NAMES.CONS".into(), cons.clone()),
        ("consumer-list", "CONSUMER.LIST.CONS".into(), cons.clone()),
        (
            "consumer-names-missing",
            "CONSUMER.NAMES.NOPE".into(),
            vec![],
        ),
        ("direct-get", "DIRECT.GET.DIFF".into(), diff.clone()),
    ];
    for (label, api, setup) in &apis {
        for (blabel, body) in bodies {
            b.js(
                format!("jetstream/{label}/{blabel}"),
                api,
                body,
                setup.clone(),
            );
        }
    }
    // Deleting really deletes: one stream per body.
    for (i, (blabel, body)) in bodies.iter().enumerate() {
        let name = format!("DEL{i}");
        b.js(
            format!("jetstream/stream-delete/{blabel}"),
            &format!("STREAM.DELETE.{name}"),
            body,
            vec![stream(&name, &format!("del{i}.>"))],
        );
    }
    // Clients that ask for no_responders get a 503 status where nothing answers.
    let no_responders = b"CONNECT {\"verbose\":false,\"headers\":true,\"no_responders\":true}\r\n";
    for (api, label) in [
        ("DIRECT.GET.DIFF", "direct-get-not-allowed"),
        ("FOO", "unknown-api"),
        ("STREAM.FROBNICATE.DIFF", "unknown-stream-api"),
    ] {
        b.js_with(
            format!("jetstream/no-responders/{label}"),
            no_responders,
            api,
            b"{\"seq\":1}",
            diff.clone(),
        );
    }
    let special: &[(&str, &str, &[u8])] = &[
        (
            "consumer-create/no-config",
            "CONSUMER.CREATE.CONS",
            b"{\"stream_name\":\"CONS\"}",
        ),
        (
            "consumer-create/config-null",
            "CONSUMER.CREATE.CONS",
            b"{\"stream_name\":\"CONS\",\"config\":null}",
        ),
        (
            "consumer-create/config-array",
            "CONSUMER.CREATE.CONS",
            b"{\"stream_name\":\"CONS\",\"config\":[]}",
        ),
        (
            "consumer-create/config-string",
            "CONSUMER.CREATE.CONS",
            b"{\"stream_name\":\"CONS\",\"config\":\"x\"}",
        ),
        (
            "consumer-create/stream-mismatch",
            "CONSUMER.CREATE.CONS",
            b"{\"stream_name\":\"OTHER\",\"config\":{}}",
        ),
        (
            "consumer-create/no-stream-name",
            "CONSUMER.CREATE.CONS",
            b"{\"config\":{}}",
        ),
        (
            "consumer-create/durable-mismatch",
            "CONSUMER.CREATE.CONS.%ID%",
            b"{\"stream_name\":\"CONS\",\"config\":{\"durable_name\":\"OTHER\"}}",
        ),
        (
            "consumer-create/bad-ack-policy",
            "CONSUMER.CREATE.CONS",
            b"{\"stream_name\":\"CONS\",\"config\":{\"ack_policy\":\"sometimes\"}}",
        ),
        (
            "consumer-create/bad-deliver-policy",
            "CONSUMER.CREATE.CONS",
            b"{\"stream_name\":\"CONS\",\"config\":{\"deliver_policy\":7}}",
        ),
        (
            "consumer-create/missing-stream-named",
            "CONSUMER.CREATE.NOPE.%ID%",
            b"{\"stream_name\":\"NOPE\",\"config\":{\"name\":\"%ID%\"}}",
        ),
        (
            "consumer-durable-create/no-config",
            "CONSUMER.DURABLE.CREATE.CONS.%ID%",
            b"{\"stream_name\":\"CONS\"}",
        ),
        (
            "stream-create/name-mismatch",
            "STREAM.CREATE.%ID%",
            b"{\"name\":\"OTHER\",\"subjects\":[\"%ID%.>\"]}",
        ),
        (
            "stream-create/name-number",
            "STREAM.CREATE.%ID%",
            b"{\"name\":5}",
        ),
        (
            "stream-create/subjects-string",
            "STREAM.CREATE.%ID%",
            b"{\"name\":\"%ID%\",\"subjects\":\"x\"}",
        ),
        (
            "stream-create/bad-retention",
            "STREAM.CREATE.%ID%",
            b"{\"name\":\"%ID%\",\"retention\":\"forever\"}",
        ),
        (
            "stream-create/bad-storage",
            "STREAM.CREATE.%ID%",
            b"{\"name\":\"%ID%\",\"storage\":\"tape\"}",
        ),
        (
            "stream-create/negative-replicas",
            "STREAM.CREATE.%ID%",
            b"{\"name\":\"%ID%\",\"num_replicas\":-1}",
        ),
        (
            "stream-create/overlap",
            "STREAM.CREATE.%ID%",
            b"{\"name\":\"%ID%\",\"subjects\":[\"diff.>\"]}",
        ),
        (
            "stream-msg-get/seq-zero",
            "STREAM.MSG.GET.DIFF",
            b"{\"seq\":0}",
        ),
        (
            "stream-msg-get/seq-missing",
            "STREAM.MSG.GET.DIFF",
            b"{\"seq\":99}",
        ),
        (
            "stream-msg-get/seq-negative",
            "STREAM.MSG.GET.DIFF",
            b"{\"seq\":-1}",
        ),
        (
            "stream-msg-get/seq-string",
            "STREAM.MSG.GET.DIFF",
            b"{\"seq\":\"1\"}",
        ),
        (
            "stream-msg-get/last-by-subj-none",
            "STREAM.MSG.GET.DIFF",
            b"{\"last_by_subj\":\"diff.none\"}",
        ),
        (
            "stream-msg-delete/seq-missing",
            "STREAM.MSG.DELETE.MDEL",
            b"{\"seq\":99}",
        ),
        (
            "stream-purge/seq-and-keep",
            "STREAM.PURGE.PURGE",
            b"{\"seq\":5,\"keep\":1}",
        ),
        (
            "stream-info/offset-string",
            "STREAM.INFO.DIFF",
            b"{\"offset\":\"x\"}",
        ),
        (
            "stream-names/subject-number",
            "STREAM.NAMES",
            b"{\"subject\":5}",
        ),
        ("unknown/foo", "FOO", b""),
        ("unknown/stream", "STREAM", b""),
        ("unknown/stream-create-no-name", "STREAM.CREATE", b"{}"),
        (
            "unknown/stream-create-two-names",
            "STREAM.CREATE.A.B",
            b"{}",
        ),
        ("unknown/stream-info-no-name", "STREAM.INFO", b""),
        ("unknown/consumer", "CONSUMER", b""),
        (
            "unknown/consumer-create-no-stream",
            "CONSUMER.CREATE",
            b"{}",
        ),
        ("unknown/lowercase-info", "info", b""),
        ("unknown/stream-frobnicate", "STREAM.FROBNICATE.DIFF", b""),
        ("unknown/server-remove", "SERVER.REMOVE", b"{}"),
        ("unknown/account-purge", "ACCOUNT.PURGE.x", b""),
        ("unknown/meta-stepdown", "META.LEADER.STEPDOWN", b"{}"),
        (
            "unknown/stream-stepdown",
            "STREAM.LEADER.STEPDOWN.DIFF",
            b"",
        ),
        ("unknown/consumer-pause", "CONSUMER.PAUSE.CONS.D1", b"{}"),
        // Wildcard subjects in lookups (these once overflowed the control plane's stack).
        (
            "wildcard/last-by-fwc",
            "STREAM.MSG.GET.DIFF",
            b"{\"last_by_subj\":\"diff.>\"}",
        ),
        (
            "wildcard/last-by-pwc-fwc",
            "STREAM.MSG.GET.DIFF",
            b"{\"last_by_subj\":\"diff.*.>\"}",
        ),
        (
            "wildcard/next-by-fwc",
            "STREAM.MSG.GET.DIFF",
            b"{\"next_by_subj\":\">\",\"seq\":2}",
        ),
        (
            "wildcard/last-by-empty-token",
            "STREAM.MSG.GET.DIFF",
            b"{\"last_by_subj\":\"diff..a\"}",
        ),
        (
            "wildcard/info-subjects-filter",
            "STREAM.INFO.DIFF",
            b"{\"subjects_filter\":\"diff.*\"}",
        ),
        (
            "wildcard/purge-filter-keep",
            "STREAM.PURGE.PURGE",
            b"{\"filter\":\"purge.>\",\"keep\":1}",
        ),
        // Pull requests: Go's json.Unmarshal words, the heartbeat rule, no_wait.
        ("msg-next/bad-json", "CONSUMER.MSG.NEXT.CONS.D1", b"{nope"),
        (
            "msg-next/truncated",
            "CONSUMER.MSG.NEXT.CONS.D1",
            b"{\"batch\":1",
        ),
        (
            "msg-next/trailing",
            "CONSUMER.MSG.NEXT.CONS.D1",
            b"{\"batch\":1} x",
        ),
        (
            "msg-next/heartbeat-too-large",
            "CONSUMER.MSG.NEXT.CONS.D1",
            b"{\"expires\":1000000000,\"idle_heartbeat\":600000000}",
        ),
        (
            "msg-next/heartbeat-without-expiry",
            "CONSUMER.MSG.NEXT.CONS.D1",
            b"{\"idle_heartbeat\":1}",
        ),
        (
            "msg-next/no-wait",
            "CONSUMER.MSG.NEXT.CONS.D1",
            b"{\"batch\":1,\"no_wait\":true}",
        ),
        ("unknown/trailing-dot", "INFO.", b""),
        ("unknown/empty-token", "STREAM..INFO", b""),
    ];
    for (label, api, body) in special {
        let setup = if api.contains("CONS") {
            cons.clone()
        } else if api.contains("DIFF") {
            diff.clone()
        } else if api.contains("MDEL") {
            vec![stream("MDEL", "mdel.>")]
        } else if api.contains("PURGE") {
            vec![stream("PURGE", "purge.>")]
        } else {
            vec![]
        };
        b.js(format!("jetstream/{label}"), api, body, setup);
    }
}

pub fn cases() -> Vec<Case> {
    let mut b = Builder { cases: Vec::new() };
    let sub_all = b"SUB %ID%.> 1\r\n";
    b.family(
        "pub",
        &[PRE, QUIET, VERBOSE, PEDANTIC],
        sub_all,
        &pub_items(),
    );
    b.family(
        "hpub",
        &[PRE, QUIET, VERBOSE, NO_HEADERS],
        sub_all,
        &hpub_items(),
    );
    b.family("sub", &[PRE, QUIET, VERBOSE], b"", &sub_items());
    b.family("utf8", &[PRE, QUIET], b"", &utf8_items());
    b.family("op", &[PRE, QUIET], b"", &op_items());
    for (label, input) in connect_items() {
        b.proto("connect", format!("connect/{label}"), input);
    }
    for (label, input) in control_line_items() {
        b.proto("line", format!("line/{label}"), input);
    }
    for (label, input) in generated() {
        b.proto("generated", format!("generated/{label}"), input);
    }
    // A JetStream request without a reply subject: nothing answers.
    b.proto(
        "jetstream",
        "jetstream/no-reply".into(),
        b"CONNECT {\"verbose\":false}\r\nPUB $JS.API.INFO 0\r\n\r\nPING\r\n".to_vec(),
    );
    jetstream(&mut b);
    b.cases
}
