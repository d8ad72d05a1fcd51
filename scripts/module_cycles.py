#!/usr/bin/env python3
"""Fails when modules of one crate import each other in a circle.

For every crate root given (src/lib.rs, src/main.rs, crates/*/src/lib.rs) it walks the module
tree (`mod x;` declarations), reads each file's paths into the crate (`crate::…`, `super::…`,
`self::…`, grouped `use` trees, re-exports followed to where an item is defined), and builds,
for every module, the graph of its children: child A depends on child B when any code under A
names anything under B. A cycle among siblings is an error. Edges between a module and its own
descendants are not cycles (a facade re-exports its children; a child may use its parent's
shared types), and test code (`#[cfg(test)]` items) is left out: tests may reach anywhere.

Usage: module_cycles.py ROOT.rs [ROOT.rs ...]   (exit 1 and a report when a cycle exists)
"""

import os
import re
import sys

MOD_DECL = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+([a-z_][a-z0-9_]*)\s*;", re.M)


def strip_code(text):
    """Comments, string and char literals blanked (same length), so braces can be counted."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "r" and re.match(r'r#*"', text[i:]) and (i == 0 or not text[i - 1].isalnum()):
            m = re.match(r'r(#*)"', text[i:])
            close = '"' + m.group(1)
            j = text.find(close, i + len(m.group(0)))
            j = n if j < 0 else j + len(close)
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            j += 1
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "'":
            m = re.match(r"'(\\u\{[0-9a-fA-F]+\}|\\x[0-9a-fA-F]{2}|\\.|[^\\'])'", text[i:])
            if m:
                out.append(" " * len(m.group(0)))
                i += len(m.group(0))
            else:  # a lifetime
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def drop_test_items(code):
    """Removes every item annotated `#[cfg(test)]` (a `use …;`, or an item with a body)."""
    while True:
        m = re.search(r"#\[cfg\(test\)\]", code)
        if not m:
            return code
        start = m.start()
        j = m.end()
        semi = code.find(";", j)
        brace = code.find("{", j)
        if brace < 0 or (0 <= semi < brace):
            end = semi + 1
        else:
            depth, k = 0, brace
            while k < len(code):
                if code[k] == "{":
                    depth += 1
                elif code[k] == "}":
                    depth -= 1
                    if depth == 0:
                        break
                k += 1
            end = k + 1
        code = code[:start] + re.sub(r"[^\n]", " ", code[start:end]) + code[end:]


class Crate:
    def __init__(self, root):
        self.root = root
        self.files = {}  # module path (tuple) -> code without tests
        self.walk((), root, True)
        self.reexports = {m: self.parse_reexports(m) for m in self.files}

    def walk(self, path, file, owns_dir):
        with open(file, encoding="utf-8") as f:
            code = drop_test_items(strip_code(f.read()))
        self.files[path] = code
        base = os.path.dirname(file)
        if not owns_dir:
            base = os.path.join(base, os.path.splitext(os.path.basename(file))[0])
        for name in MOD_DECL.findall(code):
            flat = os.path.join(base, name + ".rs")
            nested = os.path.join(base, name, "mod.rs")
            if os.path.exists(flat):
                self.walk(path + (name,), flat, False)
            elif os.path.exists(nested):
                self.walk(path + (name,), nested, True)

    def parse_reexports(self, module):
        """`pub use` names of a module -> the module path they come from."""
        names = {}
        for tree in re.findall(r"\bpub(?:\([^)]*\))?\s+use\s+([^;]+);", self.files[module]):
            for segments in expand_use(tree):
                target = self.resolve_segments(module, segments, follow=False)
                if target is not None and segments:
                    alias = segments[-1]
                    names[alias] = target
        return names

    def resolve_segments(self, module, segments, follow=True):
        """A path's segments (starting with crate/super/self) -> the module it lands in."""
        if not segments:
            return None
        head, rest = segments[0], list(segments[1:])
        if head == "crate":
            base = ()
        elif head == "super":
            base = module[:-1]
            while rest and rest[0] == "super":
                base, rest = base[:-1], rest[1:]
        elif head == "self":
            base = module
        else:
            return None
        current = base
        for seg in rest:
            if current + (seg,) in self.files:
                current = current + (seg,)
                continue
            if follow and seg in self.reexports.get(current, {}):
                return self.reexports[current][seg]
            break
        return current

    def edges(self):
        out = set()
        for module, code in self.files.items():
            for tree in re.findall(r"\buse\s+([^;]+);", code):
                for segments in expand_use(tree):
                    self.add(out, module, segments)
            for m in re.finditer(r"(?<![\w:])((?:crate|super|self)(?:::[A-Za-z_][A-Za-z0-9_]*)+)", code):
                self.add(out, module, m.group(1).split("::"))
        return out

    def add(self, out, module, segments):
        target = self.resolve_segments(module, segments)
        if target is None or target == module:
            return
        out.add((module, target))


def expand_use(tree):
    """`crate::a::{b, c::{D, E as F}}` -> [[crate,a,b], [crate,a,c,D], [crate,a,c,E]]."""
    tree = re.sub(r"\s+as\s+[A-Za-z_][A-Za-z0-9_]*", "", tree)
    tree = re.sub(r"\s+", "", tree)
    results = []

    def walk(prefix, text):
        depth, start, parts = 0, 0, []
        for i, ch in enumerate(text):
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            elif ch == "," and depth == 0:
                parts.append(text[start:i])
                start = i + 1
        parts.append(text[start:])
        for part in parts:
            if not part:
                continue
            brace = part.find("{")
            if brace >= 0 and part.endswith("}"):
                head = [s for s in part[:brace].split("::") if s]
                walk(prefix + head, part[brace + 1 : -1])
            else:
                segs = [s for s in part.split("::") if s and s != "*"]
                if segs and segs[-1] == "self":
                    segs = segs[:-1]
                results.append(prefix + segs)

    walk([], tree)
    return results


def sibling_cycles(crate):
    graph = {}  # parent -> {child: set(children)}
    for src, dst in crate.edges():
        k = 0
        while k < min(len(src), len(dst)) and src[k] == dst[k]:
            k += 1
        if k == len(src) or k == len(dst):
            continue  # one contains the other
        parent = src[:k]
        graph.setdefault(parent, {}).setdefault(src[k], set()).add(dst[k])
    cycles = []
    for parent, adj in graph.items():
        for scc in tarjan(adj):
            if len(scc) > 1:
                cycles.append((parent, sorted(scc), adj))
    return cycles


def tarjan(adj):
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]
    nodes = set(adj) | {d for ds in adj.values() for d in ds}

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in adj.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc = []
            while True:
                w = stack.pop()
                on.discard(w)
                scc.append(w)
                if w == v:
                    break
            out.append(scc)

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def main(roots):
    failed = False
    for root in roots:
        crate = Crate(root)
        for parent, scc, adj in sibling_cycles(crate):
            failed = True
            where = "::".join(("crate",) + parent)
            print(f"{root}: modules of {where} import each other in a circle: {', '.join(scc)}")
            for a in scc:
                for b in sorted(adj.get(a, ())):
                    if b in scc:
                        print(f"    {a} -> {b}")
        print(f"{root}: {len(crate.files)} modules checked")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
