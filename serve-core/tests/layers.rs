//! serve-core's modules form layers, and imports point one way: down.
//!
//! The layers are the top-level modules under `serve-core/src/`, listed lowest first in [`LAYERS`].
//! A file may use its own layer and the layers below it, never one above. `lib.rs` (the facade,
//! which re-exports everything) and the modules in [`EXEMPT`] (the `guide` doc module) are not
//! checked. A top-level module that is in neither list fails the check, so a new module cannot
//! dodge it: to add a layer, put its name in `LAYERS` at its place in the order.
//!
//! What counts as a use: every path in the code that starts with `crate::` (or `$crate::`, or
//! `serve_core::`, which `extern crate self as serve_core` makes the same thing), `self::`,
//! `super::` (from the module it is written in, inline `mod tests { .. }` included), or a child
//! module's name (`pub use queue::Queue` in `dataplane/mod.rs`): `use` items, grouped
//! `use crate::{a::B, b::{C, D}}` over any number of lines, paths inline in code, in types and in
//! macro arguments, and `pub(in crate::x)`. Comments, strings and char literals are skipped.
//! `mod x;` is not a use. `#[cfg(test)]` code counts like any other: tests obey the layers too.
//!
//! A path names the file of its longest prefix that is a module file:
//! `crate::dataplane::queue::Queue` is `dataplane/queue.rs` (or `dataplane/queue/mod.rs`),
//! `crate::dataplane::Queue` is `dataplane/mod.rs`. A path through the facade (`crate::Serve`)
//! is followed through `lib.rs`'s `use` items to the module it comes from; one that `lib.rs` does
//! not re-export by name (through a glob, or an item defined in `lib.rs`) fails: name the
//! defining module instead.
//!
//! Files must not use each other in a loop either, even within a layer. So inside a folder, name a
//! sibling by its module path (`super::queue::Queue`), not through the parent's re-exports
//! (`super::Queue`): the parent's `pub use queue::Queue` and the child's `super::Queue` make a
//! loop. For the same reason a `mod.rs` that re-exports its children should not define items its
//! children use; give those a child file of their own.
//!
//! Run it with `cargo test -p serve-core --test layers`. Each violation prints as one line,
//! `file:line: what`; a cycle as `a.rs:3 -> b.rs:5 -> a.rs`, each file with the line of its first
//! use of the next, one shortest cycle per knot of files (with all the knot's files if it has more).
//!
//! This reads source text and expands no macros: paths that macros build, and `#[path]`
//! attributes, are not seen.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

/// serve-core's layers, lowest first. Each is a top-level module: `src/x.rs` or `src/x/`.
const LAYERS: &[&str] = &[
    "util",
    "metrics",
    "error",
    "config",
    "request",
    "transport",
    "dataplane",
    "api",
    "control",
    "cluster",
    "http",
    "serve",
    "cli",
];

/// Top-level modules outside the layering (`lib.rs`, the facade, is outside it too).
const EXEMPT: &[&str] = &["guide"];

/// Names of the crate root inside the crate.
const CRATE_ROOT: &[&str] = &["crate", "$crate", "serve_core"];

/// A broken rule, as printed: where (`file:line`), and what.
type Violation = String;

/// Module path -> the file that holds it (`["dataplane", "queue"]` -> `dataplane/queue.rs`).
type Modules = BTreeMap<Vec<String>, String>;

/// Checks the layering of the crate whose `lib.rs` is in `src_root`.
fn check(src_root: &Path, layers: &[&str]) -> Vec<Violation> {
    let mut files = Vec::new();
    walk(src_root, src_root, &mut files);
    let modules: Modules = (files.iter())
        .map(|file| (module_path(file), file.clone()))
        .filter(|(module, _)| !module.is_empty())
        .collect();
    let mut found = Vec::new();
    let tops: BTreeSet<&str> = modules.keys().map(|m| m[0].as_str()).collect();
    for top in tops
        .into_iter()
        .filter(|t| !layers.contains(t) && !EXEMPT.contains(t))
    {
        let file = &modules.iter().find(|(m, _)| m[0] == top).unwrap().1;
        found.push(format!(
            "{file}: top-level module `{top}` is in no layer: add it to LAYERS in serve-core/tests/layers.rs"
        ));
    }
    let parsed: BTreeMap<&String, Vec<Ref>> = (files.iter())
        .map(|file| {
            let text = std::fs::read_to_string(src_root.join(file)).unwrap();
            (file, refs(&lex(&text), &module_path(file)))
        })
        .collect();
    // What lib.rs's `use` items bind: `Serve` -> `serve::Serve`, `prelude::X` -> `crate::X`.
    let facade: Vec<(Vec<String>, &Ref)> = (parsed.iter())
        .filter(|(file, _)| **file == "lib.rs")
        .flat_map(|(_, refs)| refs)
        .filter_map(|r| {
            let alias = r.alias.as_ref().filter(|a| *a != "_")?;
            Some(([&r.module[..], std::slice::from_ref(alias)].concat(), r))
        })
        .collect();
    let layer = |module: &[String]| layers.iter().position(|l| *l == module[0]);
    let mut edges: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for (module, file) in modules
        .iter()
        .filter(|(m, _)| !EXEMPT.contains(&m[0].as_str()))
    {
        for r in &parsed[file] {
            let Some(abs) = absolute(r, &modules) else {
                continue;
            };
            let (path, line) = (r.path.join("::"), r.line);
            match target(&abs, &modules, &facade, 0) {
                Target::Outside => {}
                Target::Unresolved => found.push(format!(
                    "{file}:{line}: `{path}` is neither a module nor a name lib.rs re-exports from one: use the module that defines it"
                )),
                Target::File(to, _) if &to == file => {}
                Target::File(to, abs) => {
                    let first_use = edges.entry(file.clone()).or_default();
                    first_use.entry(to.clone()).or_insert(line);
                    if let (Some(from), Some(to)) = (layer(module), layer(&module_path(&to)))
                        && to > from
                    {
                        let resolved = format!("crate::{}", abs.join("::"));
                        let also = match resolved == path {
                            true => String::new(),
                            false => format!("(= `{resolved}`) "),
                        };
                        let (a, b) = (layers[from], layers[to]);
                        found.push(format!(
                            "{file}:{line}: `{path}` {also}reaches up from layer {} `{a}` to layer {} `{b}`",
                            from + 1,
                            to + 1
                        ));
                    }
                }
            }
        }
    }
    found.extend(cycles(&edges));
    found
}

/// The `.rs` files under `dir`, relative to `root`, with `/` separators.
fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(root, &path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            let rel = path.strip_prefix(root).unwrap().to_string_lossy();
            out.push(rel.replace('\\', "/"));
        }
    }
}

/// `a/b.rs` and `a/b/mod.rs` are `a::b`; `lib.rs` is the root, `[]`.
fn module_path(file: &str) -> Vec<String> {
    let mut path: Vec<String> = file
        .trim_end_matches(".rs")
        .split('/')
        .map(Into::into)
        .collect();
    if file == "lib.rs" || path.last().is_some_and(|last| last == "mod") {
        path.pop();
    }
    path
}

/// The tokens of a Rust file (words, `::`, single punctuation) with their lines, without
/// comments and literals.
fn lex(text: &str) -> Vec<(String, usize)> {
    let c: Vec<char> = text.chars().collect();
    let at = |i: usize| c.get(i).copied().unwrap_or('\0');
    let skip_string = |mut i: usize| {
        while i < c.len() && c[i] != '"' {
            i += if c[i] == '\\' { 2 } else { 1 };
        }
        i + 1
    };
    let (mut i, mut line, mut out) = (0, 1, Vec::new());
    while i < c.len() {
        let start = i;
        if c[i] == '/' && at(i + 1) == '/' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if c[i] == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < c.len() {
                match (c[i], at(i + 1)) {
                    ('/', '*') => (depth, i) = (depth + 1, i + 2),
                    ('*', '/') => (depth, i) = (depth - 1, i + 2),
                    _ => i += 1,
                }
                if depth == 0 {
                    break;
                }
            }
        } else if c[i] == '"' {
            i = skip_string(i + 1);
        } else if c[i] == '\'' && at(i + 1) == '\\' {
            i = (i + 3..c.len()).find(|&j| c[j] == '\'').unwrap_or(c.len()) + 1;
        } else if c[i] == '\'' {
            // A char literal `'x'`, or a lifetime `'a` (whose name then lexes as a word).
            i += if at(i + 2) == '\'' { 3 } else { 1 };
        } else if c[i].is_alphanumeric() || c[i] == '_' || c[i] == '$' {
            i += 1;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            let word: String = c[start..i].iter().collect();
            let hashes = c[i..].iter().take_while(|&&ch| ch == '#').count();
            if matches!(&*word, "r" | "br" | "cr") && at(i + hashes) == '"' {
                let closes = |j: usize| {
                    c.get(j + 1..j + 1 + hashes)
                        .is_some_and(|h| h.iter().all(|&ch| ch == '#'))
                };
                i += hashes + 1;
                while i < c.len() && !(c[i] == '"' && closes(i)) {
                    i += 1;
                }
                i += hashes + 1;
            } else if matches!(&*word, "b" | "c") && at(i) == '"' {
                i = skip_string(i + 1);
            } else if !(word == "b" && at(i) == '\'') {
                out.push((word, line));
            }
        } else if c[i] == ':' && at(i + 1) == ':' {
            out.push(("::".into(), line));
            i += 2;
        } else {
            if !c[i].is_whitespace() {
                out.push((c[i].to_string(), line));
            }
            i += 1;
        }
        line += c[start..i.min(c.len())]
            .iter()
            .filter(|&&ch| ch == '\n')
            .count();
    }
    out
}

/// A path as written, the module it is written in, its line, and for a `use` the name it binds.
struct Ref {
    path: Vec<String>,
    module: Vec<String>,
    line: usize,
    alias: Option<String>,
}

/// The token at `i`, or "" past the end.
fn at(toks: &[(String, usize)], i: usize) -> &str {
    toks.get(i).map_or("", |t| &t.0)
}

fn is_word(token: &str) -> bool {
    token.starts_with(|ch: char| ch.is_alphanumeric() || ch == '_' || ch == '$')
}

/// Every path in a file whose module is `file_module`: `use` trees and paths in code.
fn refs(toks: &[(String, usize)], file_module: &[String]) -> Vec<Ref> {
    let mut module = file_module.to_vec(); // grows inside inline `mod x { .. }`
    let mut open = Vec::new(); // the brace depth inside each inline module
    let (mut depth, mut i, mut out) = (0, 0, Vec::new());
    while i < toks.len() {
        let token = at(toks, i);
        if token == "{" {
            depth += 1;
        } else if token == "}" {
            if open.last() == Some(&depth) {
                open.pop();
                module.pop();
            }
            depth -= 1;
        } else if token == "mod" && is_word(at(toks, i + 1)) && at(toks, i + 2) == "{" {
            module.push(at(toks, i + 1).into());
            depth += 1;
            open.push(depth);
            i += 2;
        } else if token == "use" && at(toks, i + 1) != "<" {
            // (`use<'a>` is a precise-capturing bound, not an import.)
            let mut leaves = Vec::new();
            i += 1;
            use_tree(toks, &mut i, &[], &mut leaves);
            for (path, line, alias) in leaves {
                out.push(Ref {
                    path,
                    module: module.clone(),
                    line,
                    alias,
                });
            }
            continue;
        } else if is_word(token) && at(toks, i + 1) == "::" && (i == 0 || at(toks, i - 1) != "::") {
            let (mut path, line) = (vec![token.to_string()], toks[i].1);
            while at(toks, i + 1) == "::" && is_word(at(toks, i + 2)) {
                path.push(at(toks, i + 2).into());
                i += 2;
            }
            out.push(Ref {
                path,
                module: module.clone(),
                line,
                alias: None,
            });
        }
        i += 1;
    }
    out
}

/// Reads the use tree at `toks[*i]` under `prefix`: per leaf, its path, line and bound name.
fn use_tree(
    toks: &[(String, usize)],
    i: &mut usize,
    prefix: &[String],
    out: &mut Vec<(Vec<String>, usize, Option<String>)>,
) {
    let mut path = prefix.to_vec();
    if path.is_empty() && at(toks, *i) == "::" {
        path.push("::".into()); // `use ::other_crate::..`
        *i += 1;
    }
    loop {
        let (token, line) = (at(toks, *i), toks.get(*i).map_or(0, |t| t.1));
        *i += 1;
        if is_word(token) && at(toks, *i) == "::" {
            path.push(token.into());
            *i += 1;
        } else if is_word(token) {
            if token != "self" || path.is_empty() {
                path.push(token.into()); // `use a::{self}` binds `a`
            }
            let mut alias = path.last().cloned();
            if at(toks, *i) == "as" {
                alias = Some(at(toks, *i + 1).into());
                *i += 2;
            }
            return out.push((path, line, alias));
        } else if token == "*" {
            path.push("*".into());
            return out.push((path, line, None));
        } else if token == "{" {
            while !matches!(at(toks, *i), "}" | "") {
                let before = *i;
                use_tree(toks, i, &path, out);
                *i += usize::from(*i == before || at(toks, *i) == ",");
            }
            *i += 1;
            return;
        } else {
            *i -= 1;
            return;
        }
    }
}

/// The path from the crate root that `r` names; None if it names something in another crate.
fn absolute(r: &Ref, modules: &Modules) -> Option<Vec<String>> {
    let (mut base, mut rest) = (r.module.clone(), &r.path[..]);
    match rest[0].as_str() {
        first if CRATE_ROOT.contains(&first) => (base, rest) = (vec![], &rest[1..]),
        "self" => rest = &rest[1..],
        "super" => {
            while rest.first().is_some_and(|s| s == "super") {
                base.pop()?;
                rest = &rest[1..];
            }
        }
        child if !modules.contains_key(&[&base[..], &[child.to_string()]].concat()) => return None,
        _ => {}
    }
    base.extend(rest.iter().filter(|s| *s != "*").cloned());
    Some(base)
}

enum Target {
    /// The module file, and the path from the crate root once through lib.rs's re-exports.
    File(String, Vec<String>),
    /// The crate root itself, or something in another crate.
    Outside,
    Unresolved,
}

/// The file of the longest prefix of `abs` that is a module, looking through lib.rs's re-exports.
fn target(
    abs: &[String],
    modules: &Modules,
    facade: &[(Vec<String>, &Ref)],
    hops: usize,
) -> Target {
    if abs.is_empty() {
        return Target::Outside;
    }
    if let Some(file) = (1..=abs.len()).rev().find_map(|k| modules.get(&abs[..k])) {
        return Target::File(file.clone(), abs.to_vec());
    }
    let through = (facade.iter())
        .filter(|(key, _)| abs.starts_with(key))
        .max_by_key(|(key, _)| key.len());
    let Some((key, r)) = through.filter(|_| hops < 8) else {
        return Target::Unresolved;
    };
    match absolute(r, modules) {
        None => Target::Outside,
        Some(path) => target(
            &[&path[..], &abs[key.len()..]].concat(),
            modules,
            facade,
            hops + 1,
        ),
    }
}

/// One shortest cycle per set of files that reach each other (strongly connected component).
fn cycles(edges: &BTreeMap<String, BTreeMap<String, usize>>) -> Vec<Violation> {
    let next = |file: &str| edges.get(file).into_iter().flat_map(|to| to.keys());
    let reached: BTreeMap<&String, BTreeSet<&String>> = (edges.keys())
        .map(|from| {
            let (mut seen, mut stack) = (BTreeSet::new(), vec![from]);
            while let Some(file) = stack.pop() {
                stack.extend(next(file).filter(|to| seen.insert(*to)));
            }
            (from, seen)
        })
        .collect();
    let (mut done, mut out) = (BTreeSet::new(), Vec::new());
    for (&start, from_start) in &reached {
        if done.contains(start) || !from_start.contains(start) {
            continue;
        }
        let component: Vec<&String> = (from_start.iter())
            .filter(|f| reached.get(*f).is_some_and(|r| r.contains(start)))
            .copied()
            .collect();
        done.extend(component.iter().copied());
        // Breadth first from `start` back to it: the shortest cycle through it.
        let (mut parent, mut queue, mut last) = (BTreeMap::new(), VecDeque::from([start]), start);
        'search: while let Some(file) = queue.pop_front() {
            for to in next(file) {
                if to == start {
                    last = file;
                    break 'search;
                }
                if !parent.contains_key(to) {
                    parent.insert(to, file);
                    queue.push_back(to);
                }
            }
        }
        let mut chain = vec![last];
        while *chain.last().unwrap() != start {
            chain.push(parent[chain.last().unwrap()]);
        }
        chain.reverse();
        chain.push(start);
        let mut cycle = String::from("import cycle: ");
        for pair in chain.windows(2) {
            cycle += &format!("{}:{} -> ", pair[0], edges[pair[0]][pair[1]]);
        }
        cycle += start;
        if component.len() + 1 > chain.len() {
            let all: Vec<&str> = component.iter().map(|f| f.as_str()).collect();
            cycle += &format!(" (files in this knot: {})", all.join(", "));
        }
        out.push(cycle);
    }
    out
}

#[test]
fn serve_core_layers_point_one_way() {
    let violations = check(
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src")),
        LAYERS,
    );
    assert!(
        violations.is_empty(),
        "serve-core's imports must point down its layers (see serve-core/tests/layers.rs); {} violations:\n  {}",
        violations.len(),
        violations.join("\n  ")
    );
}

// Fixtures: a small clean tree with every layer, written to a temp dir under the target dir; each
// case adds or replaces files on it. The back-edges sit in files nothing uses, so they make no
// cycle: a back-edge from a file its target reaches is reported as both.

/// The fixtures' own layers, so they do not change when the crate's order does.
const FIXTURE_LAYERS: &[&str] = &[
    "util",
    "error",
    "config",
    "api",
    "dataplane",
    "control",
    "serve",
    "http",
    "cli",
];

const CLEAN: &str = r#"
=== lib.rs
mod api;
mod cli;
pub use api::{Deployment, Handle as ApiHandle};
pub use serve::Serve;
pub mod prelude {
    pub use crate::{Deployment, Serve};
}
=== guide.rs
//! Exempt: may name anything.
use crate::cli::main;
=== util/mod.rs
pub mod time;
=== util/time.rs
pub fn now() -> u64 { 0 }
=== error.rs
use crate::util::time;
pub struct ServeError;
#[cfg(test)]
mod tests {
    use super::*;
    fn t() { time::now(); }
}
=== config/mod.rs
pub struct Config(crate::error::ServeError);
=== api/mod.rs
mod deployment;
mod handle;
pub use deployment::Deployment;
pub use self::handle::Handle;
=== api/deployment.rs
pub trait Deployment { fn config(&self) -> serve_core::config::Config; }
=== api/handle.rs
use super::deployment::Deployment;
pub struct Handle<D: Deployment>(D);
=== dataplane/mod.rs
pub mod queue;
pub mod router;
=== dataplane/queue.rs
pub struct Queue;
=== dataplane/router.rs
use super::queue::Queue;
use crate::{
    api::Handle,
    error::ServeError,
};
pub(in crate::dataplane) fn route<D: crate::Deployment>(_: crate::ApiHandle<D>, _: Queue) {}
=== control/mod.rs
use crate::dataplane::router;
use crate::prelude::Deployment;
=== serve.rs
use crate::control;
pub struct Serve;
=== http/mod.rs
pub fn serve(_: crate::Serve) {}
=== cli.rs
use crate::{http, serve::Serve};
pub fn main() {}
"#;

/// Checks the clean tree with a case's files on top, and compares what it reports. A case is
/// `=== path` lines, each followed by that file's text, then `--- reports` and the violations
/// expected, one a line.
fn assert_reports(case: &str) {
    static CASES: AtomicUsize = AtomicUsize::new(0);
    let n = CASES.fetch_add(1, Ordering::Relaxed);
    let dir = format!("layers-{}-{n}", std::process::id());
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join(dir);
    let (files, expected) = case.split_once("\n--- reports\n").unwrap();
    for file in [CLEAN, files]
        .iter()
        .flat_map(|tree| tree.split("\n=== ").skip(1))
    {
        let (path, text) = file.split_once('\n').unwrap();
        std::fs::create_dir_all(root.join("src").join(path).parent().unwrap()).unwrap();
        std::fs::write(root.join("src").join(path), text).unwrap();
    }
    let found = check(&root.join("src"), FIXTURE_LAYERS);
    std::fs::remove_dir_all(&root).unwrap();
    assert_eq!(found, expected.lines().collect::<Vec<_>>());
}

#[test]
fn a_clean_tree_passes() {
    assert_reports("\n--- reports\n");
}

#[test]
fn back_edge_via_use_fails() {
    assert_reports(
        "
=== dataplane/replica.rs
use super::queue::Queue;
use crate::control::Controller;
--- reports
dataplane/replica.rs:2: `crate::control::Controller` reaches up from layer 5 `dataplane` to layer 6 `control`
",
    );
}

#[test]
fn back_edge_via_multi_line_grouped_use_fails() {
    assert_reports(
        "
=== dataplane/replica.rs
use crate::{
    api::Handle,
    control::{
        health::Health,
        self,
    },
};
--- reports
dataplane/replica.rs:4: `crate::control::health::Health` reaches up from layer 5 `dataplane` to layer 6 `control`
dataplane/replica.rs:5: `crate::control` reaches up from layer 5 `dataplane` to layer 6 `control`
",
    );
}

#[test]
fn back_edge_via_inline_paths_fails() {
    assert_reports(
        r#"
=== api/args.rs
pub(in crate::control) fn stop() {
    let _ = format!("{:?}", crate::dataplane::queue::Queue);
}
macro_rules! health {
    () => { $crate::control::Health::default() };
}
--- reports
api/args.rs:1: `crate::control` reaches up from layer 4 `api` to layer 6 `control`
api/args.rs:2: `crate::dataplane::queue::Queue` reaches up from layer 4 `api` to layer 5 `dataplane`
api/args.rs:5: `$crate::control::Health::default` (= `crate::control::Health::default`) reaches up from layer 4 `api` to layer 6 `control`
"#,
    );
}

#[test]
fn back_edge_via_super_paths_fails() {
    assert_reports(
        "
=== dataplane/replica.rs
pub struct Replica(super::super::control::Health);
--- reports
dataplane/replica.rs:1: `super::super::control::Health` (= `crate::control::Health`) reaches up from layer 5 `dataplane` to layer 6 `control`
",
    );
}

#[test]
fn back_edge_in_a_test_module_fails() {
    assert_reports(
        "
=== util/panics.rs
#[cfg(test)]
mod tests {
    use super::super::super::error::ServeError;
}
--- reports
util/panics.rs:3: `super::super::super::error::ServeError` (= `crate::error::ServeError`) reaches up from layer 1 `util` to layer 2 `error`
",
    );
}

#[test]
fn back_edge_through_the_facade_fails() {
    assert_reports(
        "
=== dataplane/replica.rs
pub fn stop(_: crate::prelude::Serve) {}
=== config/mod.rs
use crate::Nowhere;
--- reports
config/mod.rs:1: `crate::Nowhere` is neither a module nor a name lib.rs re-exports from one: use the module that defines it
dataplane/replica.rs:1: `crate::prelude::Serve` (= `crate::serve::Serve`) reaches up from layer 5 `dataplane` to layer 7 `serve`
",
    );
}

#[test]
fn mentions_in_comments_and_strings_do_not_count() {
    assert_reports(
        r###"
=== dataplane/replica.rs
//! Driven by [`crate::control`].
/// See crate::control::Controller.
/* crate::control /* nested: crate::control */ crate::control */
const A: &str = "crate::control::X \" crate::control";
const B: &str = r#"crate::control::"X""#;
const C: &[u8] = b"crate::control";
const D: [char; 2] = ['"', '\''];
fn f<'a>(s: &'a str) -> &'a str { s } // crate::control
use crate::control::Controller; // Only this one counts.
--- reports
dataplane/replica.rs:9: `crate::control::Controller` reaches up from layer 5 `dataplane` to layer 6 `control`
"###,
    );
}

#[test]
fn a_cycle_within_a_layer_fails() {
    assert_reports(
        "
=== dataplane/queue.rs
pub struct Queue;

use super::router::route;
--- reports
import cycle: dataplane/queue.rs:3 -> dataplane/router.rs:1 -> dataplane/queue.rs
",
    );
}

#[test]
fn naming_a_sibling_through_the_parent_makes_a_cycle() {
    assert_reports(
        "
=== api/mod.rs
mod handle;
mod deployment;
pub use deployment::Deployment;
pub use handle::Handle;
=== api/handle.rs
use super::Deployment;
--- reports
import cycle: api/handle.rs:1 -> api/mod.rs:4 -> api/handle.rs
",
    );
}

#[test]
fn a_cycle_of_three_is_printed_in_order() {
    assert_reports(
        "
=== control/mod.rs
pub mod health;
pub mod status;
pub mod updates;
=== control/health.rs
use super::status::Status;
=== control/status.rs
pub struct Status(super::updates::Update);
=== control/updates.rs
fn probe() { let _ = super::health::probe(); }
--- reports
import cycle: control/health.rs:1 -> control/status.rs:1 -> control/updates.rs:1 -> control/health.rs
",
    );
}

#[test]
fn an_unlisted_module_fails() {
    assert_reports(
        "
=== metrics/mod.rs
pub struct Counter;
--- reports
metrics/mod.rs: top-level module `metrics` is in no layer: add it to LAYERS in serve-core/tests/layers.rs
",
    );
}
