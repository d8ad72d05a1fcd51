//! Subject rules (ADR-6) and the subscription index used by the router.
//!
//! Owns: validation of subjects and wildcard patterns, pattern matching, overlap tests between
//! patterns (stream subject conflicts), and `SubjectTree`, a trie keyed by tokens.
//! Does not own: who subscribed (the router keeps sids and queue groups as tree values).

/// A subject that may contain wildcards (`*` a whole token, `>` the last token), as SUB takes it.
pub fn is_valid_subject(_subject: &str) -> bool {
    unimplemented!("issue 2: subject validation")
}

/// A literal subject (no wildcards), as PUB takes it.
pub fn is_valid_literal_subject(_subject: &str) -> bool {
    unimplemented!("issue 2: subject validation")
}

/// Does `subject` (literal) match `pattern` (may contain wildcards)?
pub fn matches(_pattern: &str, _subject: &str) -> bool {
    unimplemented!("issue 2: subject matching")
}

/// Could some literal subject match both patterns?
pub fn overlaps(_a: &str, _b: &str) -> bool {
    unimplemented!("issue 2: subject overlap")
}

/// Does every subject matched by `sub` also match `of`?
pub fn is_subset(_sub: &str, _of: &str) -> bool {
    unimplemented!("issue 2: subject subset")
}

/// A token trie from wildcard patterns to values.
#[derive(Debug, Clone)]
pub struct SubjectTree<T> {
    _values: Vec<(String, T)>,
}

impl<T: Clone + PartialEq> Default for SubjectTree<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Clone + PartialEq> SubjectTree<T> {
    pub fn new() -> Self {
        Self {
            _values: Vec::new(),
        }
    }
    /// Adds `value` under `pattern` (duplicates are allowed and kept).
    pub fn insert(&mut self, _pattern: &str, _value: T) {
        unimplemented!()
    }
    /// Removes one `value` stored under `pattern`; true if it was there.
    pub fn remove(&mut self, _pattern: &str, _value: &T) -> bool {
        unimplemented!()
    }
    /// Calls `f` once for every value whose pattern matches the literal `subject`.
    pub fn for_each_match(&self, _subject: &str, _f: impl FnMut(&T)) {
        unimplemented!()
    }
    /// Number of stored values.
    pub fn len(&self) -> usize {
        unimplemented!()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
