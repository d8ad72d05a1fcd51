//! Subject rules (ADR-6) and the subscription index used by the router.
//!
//! Owns: validation of subjects and wildcard patterns, pattern matching, overlap tests between
//! patterns (stream subject conflicts), and `SubjectTree`, a trie keyed by tokens.
//! Does not own: who subscribed (the router keeps sids and queue groups as tree values).
//!
//! Wildcards are whole tokens only, as in nats-server: `*` matches exactly one token, a final `>`
//! matches one or more. A `*` or `>` inside a longer token (`foo*`) is not a wildcard; ADR-6
//! validation rejects it, but matching (like nats-server's sublist) treats it as a literal. A
//! `>` that is not the last token is likewise compared literally by matching and by the tree.
//! A subject with an empty token (`a..b`, `.a`, ``) matches nothing, as in nats-server.

use std::collections::HashMap;
use std::str::Split;

/// Whitespace nats-server refuses inside subject tokens.
fn is_subject_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0c')
}

/// The tokens of a subject, split lazily on `.` without allocating.
pub fn tokens(subject: &str) -> Split<'_, char> {
    subject.split('.')
}

/// A subject that may contain wildcards (`*` a whole token, `>` the last token), as SUB takes it
/// under ADR-6: non-empty tokens, no whitespace, no wildcard character inside a longer token.
pub fn is_valid_subject(subject: &str) -> bool {
    if subject.is_empty() {
        return false;
    }
    let mut toks = tokens(subject).peekable();
    while let Some(t) = toks.next() {
        let ok = match t {
            "" => false,
            "*" => true,
            ">" => toks.peek().is_none(),
            _ => !t.contains(|c| c == '*' || c == '>' || is_subject_space(c)),
        };
        if !ok {
            return false;
        }
    }
    true
}

/// A literal subject (no wildcards), as PUB takes it: a valid subject with no `*` or `>`.
pub fn is_valid_literal_subject(subject: &str) -> bool {
    is_valid_subject(subject) && !subject.contains(['*', '>'])
}

/// Whether `subject` has a whole-token wildcard (`*` or `>`), nats-server's `subjectHasWildcard`.
pub fn has_wildcard(subject: &str) -> bool {
    tokens(subject).any(|t| t == "*" || t == ">")
}

/// nats-server's acceptance rule for a SUB subject (its sublist insert): no empty token and no
/// token after a whole-token `>`. More lenient than ADR-6: `foo*` is accepted as a literal token.
/// A SUB failing this gets `-ERR 'Invalid Subject'` and the connection stays open.
pub fn nats_server_accepts_sub(subject: &str) -> bool {
    let mut after_fwc = false;
    for t in tokens(subject) {
        if t.is_empty() || after_fwc {
            return false;
        }
        after_fwc = t == ">";
    }
    true
}

/// nats-server's `IsValidLiteralSubject`, the pedantic-mode PUB check: no empty token and no
/// whole-token wildcard (`foo*` passes, whitespace is not checked).
pub fn nats_server_pedantic_pub_ok(subject: &str) -> bool {
    tokens(subject).all(|t| !t.is_empty() && t != "*" && t != ">")
}

fn has_empty_token(subject: &str) -> bool {
    subject.is_empty()
        || subject.starts_with('.')
        || subject.ends_with('.')
        || subject.contains("..")
}

/// Does `subject` (literal) match `pattern` (may contain wildcards)?
pub fn matches(pattern: &str, subject: &str) -> bool {
    if has_empty_token(subject) {
        return false;
    }
    let mut p = tokens(pattern);
    let mut s = tokens(subject);
    loop {
        match (p.next(), s.next()) {
            (None, None) => return true,
            (Some(">"), Some(_)) if p.clone().next().is_none() => return true,
            (Some(pt), Some(st)) => {
                if pt != "*" && pt != st {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok<'a> {
    Lit(&'a str),
    Pwc,
    Fwc,
}

/// Classifies the next token of `it`, knowing a `>` is a wildcard only at the end.
fn next_tok<'a>(it: &mut Split<'a, char>) -> Option<Tok<'a>> {
    let t = it.next()?;
    Some(match t {
        "*" => Tok::Pwc,
        ">" if it.clone().next().is_none() => Tok::Fwc,
        _ => Tok::Lit(t),
    })
}

/// Could some literal subject match both patterns? (nats-server's `SubjectsCollide`.)
pub fn overlaps(a: &str, b: &str) -> bool {
    let mut a = tokens(a);
    let mut b = tokens(b);
    loop {
        match (next_tok(&mut a), next_tok(&mut b)) {
            (None, None) => return true,
            (Some(Tok::Lit("")), _) | (_, Some(Tok::Lit(""))) => return false,
            (Some(Tok::Fwc), Some(_)) => return b.all(|t| !t.is_empty()),
            (Some(_), Some(Tok::Fwc)) => return a.all(|t| !t.is_empty()),
            (Some(Tok::Pwc), Some(_)) | (Some(_), Some(Tok::Pwc)) => {}
            (Some(Tok::Lit(x)), Some(Tok::Lit(y))) => {
                if x != y {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

/// Does every subject matched by `sub` also match `of`? Both must be valid patterns.
/// (nats-server's `isSubsetMatch`.)
pub fn is_subset(sub: &str, of: &str) -> bool {
    let mut s = tokens(sub);
    let mut o = tokens(of);
    loop {
        match (next_tok(&mut s), next_tok(&mut o)) {
            (None, None) => return true,
            (Some(_), Some(Tok::Fwc)) => return true,
            (Some(Tok::Fwc), Some(_)) => return false,
            (Some(Tok::Pwc), Some(Tok::Pwc)) => {}
            (Some(Tok::Pwc), Some(Tok::Lit(_))) => return false,
            (Some(Tok::Lit(_)), Some(Tok::Pwc)) => {}
            (Some(Tok::Lit(x)), Some(Tok::Lit(y))) => {
                if x != y {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

/// Not `Clone`: a derived clone would recurse once per token.
#[derive(Debug)]
struct Node<T> {
    literal: HashMap<Box<str>, Node<T>>,
    pwc: Option<Box<Node<T>>>,
    /// Values whose pattern ends with `>` right after this node.
    fwc: Vec<T>,
    /// Values whose pattern ends at this node.
    here: Vec<T>,
}

impl<T> Default for Node<T> {
    fn default() -> Self {
        Self {
            literal: HashMap::new(),
            pwc: None,
            fwc: Vec::new(),
            here: Vec::new(),
        }
    }
}

/// Iterative, as the walks are: dropping a node 100,000 tokens deep must not recurse once per
/// token. Each node's children are moved onto a heap stack before it is dropped.
impl<T> Drop for Node<T> {
    fn drop(&mut self) {
        let mut stack: Vec<Node<T>> = self.literal.drain().map(|(_, n)| n).collect();
        stack.extend(self.pwc.take().map(|p| *p));
        while let Some(mut n) = stack.pop() {
            stack.extend(n.literal.drain().map(|(_, c)| c));
            stack.extend(n.pwc.take().map(|p| *p));
        }
    }
}

impl<T> Node<T> {
    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.here.is_empty() && self.fwc.is_empty() && self.pwc.is_none() && self.literal.is_empty()
    }
}

fn remove_one<T: PartialEq>(values: &mut Vec<T>, value: &T) -> bool {
    match values.iter().position(|v| v == value) {
        Some(i) => {
            values.swap_remove(i);
            true
        }
        None => false,
    }
}

/// Removes one `value` stored under `pattern`, then prunes the nodes left empty. Iterative: a
/// pattern may have as many tokens as a control line (or a JSON body) has dots, so neither this
/// nor the walks below use the call stack per token.
fn remove_path<T: PartialEq>(root: &mut Node<T>, pattern: &str, value: &T) -> bool {
    // The tokens leading to the node that holds the value, as edges: Some(literal) or None (`*`).
    let mut edges: Vec<Option<&str>> = Vec::new();
    let mut fwc = false;
    let mut toks = tokens(pattern);
    while let Some(tok) = next_tok(&mut toks) {
        match tok {
            Tok::Fwc => {
                fwc = true;
                break;
            }
            Tok::Pwc => edges.push(None),
            Tok::Lit(t) => edges.push(Some(t)),
        }
    }
    let removed = {
        let mut node = &mut *root;
        for edge in &edges {
            let next = match edge {
                Some(t) => node.literal.get_mut(*t),
                None => node.pwc.as_deref_mut(),
            };
            match next {
                Some(n) => node = n,
                None => return false,
            }
        }
        if fwc {
            remove_one(&mut node.fwc, value)
        } else {
            remove_one(&mut node.here, value)
        }
    };
    if removed {
        prune(root, &edges);
    }
    removed
}

/// After a removal under the path `edges`: removes the longest tail of that path whose nodes
/// hold nothing but the path itself. Two walks down the path, so linear in its length.
fn prune<T>(root: &mut Node<T>, edges: &[Option<&str>]) {
    fn child<'n, T>(node: &'n Node<T>, edge: Option<&str>) -> Option<&'n Node<T>> {
        match edge {
            Some(t) => node.literal.get(t),
            None => node.pwc.as_deref(),
        }
    }
    // The first depth from which every node on the path is only the path.
    let mut cut = None;
    let mut node = &*root;
    for (depth, edge) in edges.iter().enumerate() {
        let Some(next) = child(node, *edge) else {
            return;
        };
        let children = next.literal.len() + usize::from(next.pwc.is_some());
        let is_last = depth + 1 == edges.len();
        let only_path =
            next.here.is_empty() && next.fwc.is_empty() && children == usize::from(!is_last);
        if !only_path {
            cut = None;
        } else if cut.is_none() {
            cut = Some(depth);
        }
        node = next;
    }
    let Some(cut) = cut else {
        return;
    };
    let mut parent = &mut *root;
    for edge in &edges[..cut] {
        let next = match edge {
            Some(t) => parent.literal.get_mut(*t),
            None => parent.pwc.as_deref_mut(),
        };
        match next {
            Some(n) => parent = n,
            None => return,
        }
    }
    match edges[cut] {
        Some(t) => {
            parent.literal.remove(t);
        }
        None => parent.pwc = None,
    }
}

/// Visits every node reached by the tokens of `subject` (a literal), depth first with an
/// explicit stack, calling `visit(node, rest_is_empty)` for each: `rest_is_empty` is true when
/// the subject ends at that node. Returns early when `visit` returns true.
fn visit<'a, T>(
    root: &'a Node<T>,
    subject: &'a str,
    mut visit: impl FnMut(&'a Node<T>, bool) -> bool,
) -> bool {
    let mut stack: Vec<(&'a Node<T>, Split<'a, char>)> = vec![(root, tokens(subject))];
    while let Some((node, mut toks)) = stack.pop() {
        let tok = toks.next();
        if visit(node, tok.is_none()) {
            return true;
        }
        let Some(tok) = tok else {
            continue;
        };
        // Pushed literal first so the `*` branch is visited first, as the recursive walk did.
        if let Some(c) = node.literal.get(tok) {
            stack.push((c, toks.clone()));
        }
        if let Some(p) = &node.pwc {
            stack.push((p, toks));
        }
    }
    false
}

fn walk<T, F: FnMut(&T)>(node: &Node<T>, subject: &str, f: &mut F) {
    visit(node, subject, |n, end| {
        if end {
            n.here.iter().for_each(&mut *f);
        } else {
            n.fwc.iter().for_each(&mut *f);
        }
        false
    });
}

fn any_match<T>(node: &Node<T>, subject: &str) -> bool {
    visit(node, subject, |n, end| {
        if end {
            !n.here.is_empty()
        } else {
            !n.fwc.is_empty()
        }
    })
}

/// A token trie from wildcard patterns to values.
#[derive(Debug)]
pub struct SubjectTree<T> {
    root: Node<T>,
    len: usize,
}

impl<T: Clone + PartialEq> Default for SubjectTree<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Clone + PartialEq> SubjectTree<T> {
    pub fn new() -> Self {
        Self {
            root: Node::default(),
            len: 0,
        }
    }

    /// Adds `value` under `pattern` (duplicates are allowed and kept). The pattern should be
    /// valid; an invalid one is stored under the literal reading described in the module doc.
    pub fn insert(&mut self, pattern: &str, value: T) {
        let mut node = &mut self.root;
        let mut toks = tokens(pattern);
        while let Some(tok) = next_tok(&mut toks) {
            node = match tok {
                Tok::Fwc => {
                    node.fwc.push(value);
                    self.len += 1;
                    return;
                }
                Tok::Pwc => node.pwc.get_or_insert_with(Box::default),
                Tok::Lit(t) => node.literal.entry(Box::from(t)).or_default(),
            };
        }
        node.here.push(value);
        self.len += 1;
    }

    /// Removes one `value` stored under `pattern`; true if it was there. Nodes left empty are
    /// pruned.
    pub fn remove(&mut self, pattern: &str, value: &T) -> bool {
        let removed = remove_path(&mut self.root, pattern, value);
        if removed {
            self.len -= 1;
        }
        removed
    }

    /// Calls `f` once for every value whose pattern matches the literal `subject`. Allocates
    /// nothing.
    pub fn for_each_match(&self, subject: &str, mut f: impl FnMut(&T)) {
        if has_empty_token(subject) {
            return;
        }
        walk(&self.root, subject, &mut f);
    }

    /// Whether any value's pattern matches `subject` (stops at the first).
    pub fn has_match(&self, subject: &str) -> bool {
        !has_empty_token(subject) && any_match(&self.root, subject)
    }

    /// Number of stored values.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn validation_follows_adr6() {
        for ok in [
            "foo",
            "foo.bar",
            "foo.*",
            "*",
            ">",
            "foo.>",
            "*.*.>",
            "$JS.API.>",
            "a-b_c",
            "ü.ñ",
        ] {
            assert!(is_valid_subject(ok), "{ok}");
        }
        for bad in [
            "",
            ".",
            "foo.",
            ".foo",
            "foo..bar",
            "foo.>.bar",
            ">.foo",
            "foo bar",
            "foo\tbar",
            "foo\r",
            "foo\n.bar",
            "foo*",
            "foo.b*r",
            "foo.>>",
            "f>o",
            "\x0c",
        ] {
            assert!(!is_valid_subject(bad), "{bad:?}");
        }
        assert!(is_valid_literal_subject("foo.bar"));
        assert!(!is_valid_literal_subject("foo.*"));
        assert!(!is_valid_literal_subject("foo.>"));
        assert!(!is_valid_literal_subject(""));
        assert!(!is_valid_literal_subject("foo..bar"));
    }

    #[test]
    fn nats_server_rules_are_more_lenient() {
        assert!(nats_server_accepts_sub("foo*"));
        assert!(nats_server_accepts_sub("foo.>"));
        assert!(nats_server_accepts_sub("*.>"));
        assert!(!nats_server_accepts_sub(""));
        assert!(!nats_server_accepts_sub("foo..bar"));
        assert!(!nats_server_accepts_sub("foo.>.bar"));
        assert!(!nats_server_accepts_sub("foo."));
        assert!(nats_server_pedantic_pub_ok("foo*.b>"));
        assert!(!nats_server_pedantic_pub_ok("foo.*"));
        assert!(!nats_server_pedantic_pub_ok("foo.>"));
        assert!(!nats_server_pedantic_pub_ok("foo..bar"));
        assert!(!nats_server_pedantic_pub_ok(""));
        assert!(has_wildcard("a.*.b"));
        assert!(has_wildcard(">"));
        assert!(!has_wildcard("a*.b>"));
    }

    #[test]
    fn matching() {
        let cases = [
            ("foo", "foo", true),
            ("foo", "bar", false),
            ("foo.*", "foo.bar", true),
            ("foo.*", "foo", false),
            ("foo.*", "foo.bar.baz", false),
            ("foo.>", "foo.bar", true),
            ("foo.>", "foo.bar.baz", true),
            ("foo.>", "foo", false),
            (">", "foo", true),
            (">", "foo.bar", true),
            ("*", "foo", true),
            ("*", "foo.bar", false),
            ("*.bar", "foo.bar", true),
            ("*.*.baz", "a.b.baz", true),
            ("foo.bar", "foo.bar.baz", false),
            // Publishing to a wildcard subject only reaches wildcard subscriptions.
            ("foo.*", "foo.*", true),
            ("foo.bar", "foo.*", false),
            // Partial wildcards are literal.
            ("foo*", "foo*", true),
            ("foo*", "foox", false),
            // Empty tokens never match.
            (">", "", false),
            ("*", "", false),
            (">", "a..b", false),
            ("a.*", "a.", false),
        ];
        for (p, s, want) in cases {
            assert_eq!(matches(p, s), want, "{p} vs {s}");
        }
    }

    #[test]
    fn overlap_and_subset_examples() {
        assert!(overlaps("foo.*", "foo.bar"));
        assert!(overlaps("foo.>", "*.bar"));
        assert!(overlaps("foo.>", "foo.*.baz"));
        assert!(!overlaps("foo.*", "foo.bar.baz"));
        assert!(!overlaps("foo.>", "foo"));
        assert!(!overlaps("foo.*", "bar.*"));
        assert!(overlaps(">", "a"));
        assert!(is_subset("foo.bar", "foo.*"));
        assert!(is_subset("foo.*", "foo.>"));
        assert!(is_subset("foo.*", "foo.*"));
        assert!(is_subset("foo.>", ">"));
        assert!(!is_subset("foo.>", "foo.*"));
        assert!(!is_subset("foo.*", "foo.bar"));
        assert!(!is_subset("foo", "foo.>"));
    }

    fn collect(tree: &SubjectTree<u32>, subject: &str) -> Vec<u32> {
        let mut v = Vec::new();
        tree.for_each_match(subject, |x| v.push(*x));
        v.sort_unstable();
        v
    }

    #[test]
    fn tree_basics() {
        let mut t = SubjectTree::new();
        t.insert("foo.bar", 1);
        t.insert("foo.*", 2);
        t.insert("foo.>", 3);
        t.insert(">", 4);
        t.insert("foo.bar", 1);
        t.insert("*.bar.baz", 5);
        assert_eq!(t.len(), 6);
        assert_eq!(collect(&t, "foo.bar"), [1, 1, 2, 3, 4]);
        assert_eq!(collect(&t, "foo.bar.baz"), [3, 4, 5]);
        assert_eq!(collect(&t, "foo"), [4]);
        assert_eq!(collect(&t, "x.y"), [4]);
        assert_eq!(collect(&t, "foo..bar"), Vec::<u32>::new());
        assert!(t.has_match("anything"));
        assert!(t.remove("foo.bar", &1));
        assert_eq!(collect(&t, "foo.bar"), [1, 2, 3, 4]);
        assert!(!t.remove("foo.bar", &9));
        assert!(!t.remove("nope.x", &1));
        assert!(t.remove(">", &4));
        assert!(!t.has_match("x.y"));
        for (p, v) in [("foo.bar", 1), ("foo.*", 2), ("foo.>", 3), ("*.bar.baz", 5)] {
            assert!(t.remove(p, &v));
        }
        assert!(t.is_empty());
        assert!(t.root.is_empty(), "empty nodes must be pruned");
    }

    fn pat_token() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec!["a", "b", "c", "*", ">"])
    }

    /// Any token sequence over the alphabet, including a non-final `>`.
    fn any_pattern() -> impl Strategy<Value = String> {
        prop::collection::vec(pat_token(), 1..5).prop_map(|t| t.join("."))
    }

    /// Valid ADR-6 patterns: literal or `*` tokens, optionally ending with `>`.
    fn valid_pattern() -> impl Strategy<Value = String> {
        (
            prop::collection::vec(prop::sample::select(vec!["a", "b", "c", "*"]), 0..4),
            any::<bool>(),
        )
            .prop_filter_map("non-empty", |(mut t, fwc)| {
                if fwc {
                    t.push(">");
                }
                (!t.is_empty()).then(|| t.join("."))
            })
    }

    fn literal_subject() -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(vec!["a", "b", "c", "d", ""]), 1..6)
            .prop_map(|t| t.join("."))
    }

    /// Every literal subject over {a,b,c,d} with 1..=max_len tokens. `d` never appears in the
    /// patterns, so it stands for "any other token".
    fn universe(max_len: usize) -> Vec<String> {
        let alphabet = ["a", "b", "c", "d"];
        let mut all = Vec::new();
        let mut layer = vec![String::new()];
        for _ in 0..max_len {
            let mut next = Vec::new();
            for prefix in &layer {
                for t in alphabet {
                    next.push(if prefix.is_empty() {
                        t.to_string()
                    } else {
                        format!("{prefix}.{t}")
                    });
                }
            }
            all.extend(next.iter().cloned());
            layer = next;
        }
        all
    }

    fn max_len(a: &str, b: &str) -> usize {
        tokens(a).count().max(tokens(b).count()) + 1
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn tree_agrees_with_matches(
            patterns in prop::collection::vec(any_pattern(), 0..20),
            subjects in prop::collection::vec(literal_subject(), 1..20),
        ) {
            let mut tree = SubjectTree::new();
            for (i, p) in patterns.iter().enumerate() {
                tree.insert(p, i as u32);
            }
            for s in &subjects {
                let want: Vec<u32> = patterns
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| matches(p, s))
                    .map(|(i, _)| i as u32)
                    .collect();
                prop_assert_eq!(collect(&tree, s), want.clone(), "subject {}", s);
                prop_assert_eq!(tree.has_match(s), !want.is_empty());
            }
        }

        #[test]
        fn insert_then_remove_leaves_an_empty_tree(
            entries in prop::collection::vec((any_pattern(), 0u32..4), 0..30),
            order in any::<u64>(),
        ) {
            let mut tree = SubjectTree::new();
            for (p, v) in &entries {
                tree.insert(p, *v);
            }
            prop_assert_eq!(tree.len(), entries.len());
            let mut shuffled = entries.clone();
            let n = shuffled.len();
            let mut x = order;
            for i in (1..n).rev() {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                shuffled.swap(i, (x >> 33) as usize % (i + 1));
            }
            for (p, v) in &shuffled {
                prop_assert!(tree.remove(p, v));
            }
            prop_assert!(tree.is_empty());
            prop_assert!(tree.root.is_empty());
            for (p, v) in &entries {
                prop_assert!(!tree.remove(p, v));
            }
        }

        #[test]
        fn overlaps_agrees_with_brute_force(a in valid_pattern(), b in valid_pattern()) {
            let brute = universe(max_len(&a, &b)).iter().any(|s| matches(&a, s) && matches(&b, s));
            prop_assert_eq!(overlaps(&a, &b), brute, "{} / {}", a, b);
            prop_assert_eq!(overlaps(&b, &a), brute);
        }

        #[test]
        fn is_subset_agrees_with_brute_force(a in valid_pattern(), b in valid_pattern()) {
            let brute = universe(max_len(&a, &b)).iter().all(|s| !matches(&a, s) || matches(&b, s));
            prop_assert_eq!(is_subset(&a, &b), brute, "{} in {}", a, b);
        }

        #[test]
        fn generated_patterns_are_valid(a in valid_pattern()) {
            prop_assert!(is_valid_subject(&a));
            prop_assert_eq!(is_valid_literal_subject(&a), !has_wildcard(&a));
        }
    }

    /// A subject of 200,000 tokens (a JSON body can carry one) neither overflows the stack nor
    /// misses: the tree walks iteratively.
    #[test]
    fn very_deep_subjects_walk_iteratively() {
        let deep = vec!["a"; 200_000].join(".");
        let mut tree = SubjectTree::new();
        tree.insert(&deep, 1u32);
        tree.insert(&format!("{deep}.*"), 2);
        tree.insert("a.>", 3);
        assert_eq!(collect(&tree, &deep), vec![1, 3]);
        assert!(tree.has_match(&format!("{deep}.x")));
        assert!(tree.remove(&deep, &1));
        assert!(tree.remove(&format!("{deep}.*"), &2));
        assert!(tree.remove("a.>", &3));
        assert!(tree.is_empty());
        assert!(tree.root.is_empty());
    }
}
