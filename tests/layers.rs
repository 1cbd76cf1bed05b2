//! The layering of `node/`, checked: a module imports only from its own layer or lower
//! (issue 12). Every `crate::<module>` path in every `.rs` file under `node/` is read,
//! in `use` lines and inline, test code included; comments are skipped.
//!
//! The layers, bottom to top (`LAYERS` below is the table this test goes by):
//!
//! * L0 `domain`: plain types and pure rules.
//! * L1 `identity` (PKI, TLS, signing keys) and `policy` (the rules over the domain).
//! * L2 `store`, over the domain (and `identity`'s signature checks in its audit).
//! * L3 `config`, over the above.
//! * L4 `rpc` (gate, refusal, wire conversions, strict codec) and `pb` (generated wire
//!   types: nothing below `rpc` sees the wire).
//! * L5 the services: `exchange`, `federation`, `access`, `objection`, `census`.
//! * L6 `server`, which wires a node.
//! * L7 `cli`, `devnet`, `fuzzing`.
//!
//! Imports within a layer are allowed. Between services (L5) they are listed by
//! `services_importing_services` so the coupling stays visible.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level module -> layer.
const LAYERS: &[(&str, u8)] = &[
    ("domain", 0),
    ("identity", 1),
    ("policy", 1),
    ("store", 2),
    ("config", 3),
    ("rpc", 4),
    ("pb", 4),
    ("access", 5),
    ("census", 5),
    ("exchange", 5),
    ("federation", 5),
    ("objection", 5),
    ("server", 6),
    ("cli", 7),
    ("devnet", 7),
    ("fuzzing", 7),
];

/// Upward imports not yet removed: (file, module it reaches, why). Keyed by file, so
/// the same import anywhere else still fails. An entry that no longer matches any import
/// fails the test, so the list only shrinks.
const ALLOWED_UPWARD: &[(&str, &str, &str)] = &[
    (
        "node/store/tests.rs",
        "objection",
        "test only: store::tests::a_taken_case_and_its_suspension_survive_replay_together \
         takes a case with objection::origin::take_case, then writes through the store's \
         private trees to stage a crash; it moves out once the Store trait gives tests \
         that seam (issue 12, item 2)",
    ),
    (
        "node/store/tests.rs",
        "federation",
        "test only: store::tests::a_held_copy_that_cannot_be_read_is_an_error_not_absent_r_fed_1 \
         calls federation::sync::held_copies after damaging the store's private trees; \
         moves with the one above",
    ),
];

/// One `crate::<module>` reference.
#[derive(Clone, Debug)]
struct Import {
    file: String,
    line: usize,
    from: String,
    to: String,
}

fn layer(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rs_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

/// The line without its `//` comment. A `//` inside a string literal (`"credit://..."`)
/// is not a comment: quotes before it are counted.
fn code_part(line: &str) -> &str {
    let bytes = line.as_bytes();
    let mut in_string = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if in_string => i += 1,
            b'"' => in_string = !in_string,
            b'/' if !in_string && bytes.get(i + 1) == Some(&b'/') => return &line[..i],
            _ => {}
        }
        i += 1;
    }
    line
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The identifier at the start of `text`, after any whitespace.
fn ident(text: &str) -> String {
    text.trim_start()
        .chars()
        .take_while(|c| is_ident(*c))
        .collect()
}

/// The first names of each item of a `{...}` group that starts `text` (just after the
/// `{`): `a::X, b, c::{d, e}` gives `a`, `b`, `c`. Nested groups are skipped.
fn group_heads(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut depth, mut item_start) = (0usize, true);
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => item_start = true,
            c if item_start && is_ident(c) => {
                item_start = false;
                out.push(ident(&text[i..]));
            }
            _ => {}
        }
    }
    out.retain(|n| n != "self");
    out
}

/// The top-level modules `code` names: `crate::<module>` paths (a `crate::{a, b::c}`
/// group names each item), and `super::` chains long enough to climb to the crate root
/// from a module `depth` levels below it (`node/a/b.rs` is at depth 2). Returns each
/// with its byte offset in `code`.
fn crate_refs_at(code: &str, depth: usize) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (start, _) in code.match_indices("crate::") {
        let before = code[..start].chars().next_back();
        // `$crate::` (macros) and `other_crate::` are not paths of this crate.
        if before.is_some_and(|c| is_ident(c) || c == '$') {
            continue;
        }
        let after = code[start + "crate::".len()..].trim_start();
        if let Some(group) = after.strip_prefix('{') {
            out.extend(group_heads(group).into_iter().map(|n| (start, n)));
        } else {
            let name = ident(after);
            if !name.is_empty() {
                out.push((start, name));
            }
        }
    }
    for (start, _) in code.match_indices("super::") {
        // Only the first `super::` of a chain.
        if code[..start].ends_with("super::") {
            continue;
        }
        if code[..start].chars().next_back().is_some_and(is_ident) {
            continue;
        }
        let mut rest = &code[start..];
        let mut climbs = 0;
        while let Some(r) = rest.strip_prefix("super::") {
            climbs += 1;
            rest = r;
        }
        if climbs < depth {
            continue; // stays inside the top-level module
        }
        if let Some(group) = rest.trim_start().strip_prefix('{') {
            out.extend(group_heads(group).into_iter().map(|n| (start, n)));
        } else {
            let name = ident(rest);
            if !name.is_empty() {
                out.push((start, name));
            }
        }
    }
    out
}

/// The top-level modules named by `crate::<module>` in one line of code (the scanner's
/// unit tests).
fn crate_refs(code: &str) -> Vec<String> {
    crate_refs_at(code, usize::MAX)
        .into_iter()
        .map(|(_, n)| n)
        .collect()
}

/// Every `crate::` reference between top-level modules under `node/`.
fn imports() -> Vec<Import> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("node");
    let mut files = Vec::new();
    rs_files(&root, &mut files);
    assert!(
        files.len() > 50,
        "read the sources under {}",
        root.display()
    );
    let mut out = Vec::new();
    for path in files {
        let rel = path.strip_prefix(&root).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let from = first.trim_end_matches(".rs").to_string();
        if from == "lib" || from == "main" {
            continue; // the crate root declares the modules; `main` uses the library by name
        }
        let text = std::fs::read_to_string(&path).unwrap();
        // Comments out, lines kept, so a group spread over lines reads as one.
        let code: String = text
            .lines()
            .map(|l| format!("{}\n", code_part(l)))
            .collect();
        // How far below the crate root the file's module is: `a.rs` and `a/mod.rs` are
        // one level, `a/b.rs` two.
        let mut depth = rel.components().count();
        if rel.file_name().is_some_and(|f| f == "mod.rs") {
            depth -= 1;
        }
        for (at, to) in crate_refs_at(&code, depth) {
            if to != from {
                out.push(Import {
                    file: format!("node/{}", rel.display()),
                    line: code[..at].matches('\n').count() + 1,
                    from: from.clone(),
                    to,
                });
            }
        }
    }
    out
}

#[test]
fn every_module_has_a_layer() {
    let unknown: BTreeSet<String> = imports()
        .iter()
        .flat_map(|i| [i.from.clone(), i.to.clone()])
        .filter(|m| layer(m).is_none())
        .collect();
    assert!(
        unknown.is_empty(),
        "modules missing from LAYERS in tests/layers.rs: {unknown:?}"
    );
}

#[test]
fn no_module_imports_a_higher_layer() {
    let mut upward = Vec::new();
    let mut allowed_used = BTreeSet::new();
    for i in imports() {
        let (Some(from), Some(to)) = (layer(&i.from), layer(&i.to)) else {
            continue; // reported by `every_module_has_a_layer`
        };
        if to <= from {
            continue;
        }
        if let Some(a) = ALLOWED_UPWARD
            .iter()
            .find(|(f, t, _)| *f == i.file && *t == i.to)
        {
            allowed_used.insert((a.0, a.1));
            continue;
        }
        upward.push(format!(
            "{}:{}: {} (L{from}) -> {} (L{to})",
            i.file, i.line, i.from, i.to
        ));
    }
    let stale: Vec<_> = ALLOWED_UPWARD
        .iter()
        .filter(|(f, t, _)| !allowed_used.contains(&(*f, *t)))
        .collect();
    assert!(
        upward.is_empty() && stale.is_empty(),
        "imports that go up a layer:\n{}\nallow-list entries no longer needed: {stale:?}",
        upward.join("\n")
    );
}

/// Services importing one another is allowed (same layer) but listed, so the coupling
/// is seen: run with `--nocapture` to print the table.
#[test]
fn services_importing_services() {
    let mut table: BTreeMap<(String, String), usize> = BTreeMap::new();
    for i in imports() {
        if layer(&i.from) == Some(5) && layer(&i.to) == Some(5) {
            *table.entry((i.from, i.to)).or_default() += 1;
        }
    }
    println!("service -> service imports (same layer, allowed):");
    for ((from, to), n) in &table {
        println!("  {from} -> {to}: {n}");
    }
}

/// The domain knows neither the wire, the store engine nor the runtime: no `tonic`,
/// `prost`, `sled` or `tokio` path in its code (generated `pb` is a layer of its own).
#[test]
fn the_domain_names_no_wire_store_or_runtime() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("node/domain");
    let mut files = Vec::new();
    rs_files(&root, &mut files);
    let mut found = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = code_part(line);
            for name in ["tonic::", "prost::", "sled::", "tokio::"] {
                if code.contains(name) {
                    found.push(format!("{}:{}: {name}", path.display(), n + 1));
                }
            }
        }
    }
    assert!(found.is_empty(), "the domain names:\n{}", found.join("\n"));
}

#[test]
fn the_check_sees_an_upward_import() {
    // The scanner itself: a path in code counts, one in a comment does not. (One inside
    // a string literal would count too: a false alarm, never a miss.)
    assert_eq!(
        crate_refs(code_part("use crate::server::Gate; // crate::cli")),
        ["server"]
    );
    assert_eq!(
        crate_refs(code_part(r#"let u = "credit://node/1"; crate::rpc::x()"#)),
        ["rpc"]
    );
    assert!(crate_refs(code_part("$crate::domain::x; my_crate::cli")).is_empty());
    // Groups, also over several lines, name each item.
    assert_eq!(
        crate_refs("use crate::{\n    server::Gate,\n    cli::{self, Exit},\n    domain,\n};"),
        ["server", "cli", "domain"]
    );
    // `super::` climbing to the crate root names a top-level module; within one, not.
    let refs = |code: &str, depth| -> Vec<String> {
        crate_refs_at(code, depth)
            .into_iter()
            .map(|(_, n)| n)
            .collect()
    };
    assert_eq!(refs("use super::super::server::Gate;", 2), ["server"]);
    assert_eq!(
        refs("use super::{cli, server::Gate};", 1),
        ["cli", "server"]
    );
    assert!(refs("use super::super::codec;", 3).is_empty());
    assert!(refs("use super::codec;", 2).is_empty());
    assert!(layer("domain") < layer("server"));
}

/// The sled crate is named only by the sled engine (`store/sled/`) and by its integrity
/// check (`store/check.rs`, which walks sled's trees key by key): everything else in the
/// store reaches storage through the seam (`store::backend`), so another engine plugs in
/// beside sled without touching it.
#[test]
fn only_the_sled_engine_names_sled() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("node");
    let engine = root.join("store/sled");
    let check = root.join("store/check.rs");
    let mut files = Vec::new();
    rs_files(&root, &mut files);
    let mut found = Vec::new();
    for path in files {
        if path.starts_with(&engine) || path == check {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = code_part(line);
            // The crate's paths, not the module `store::sled` (`super::sled::...`).
            let names_crate = code.match_indices("sled::").any(|(at, _)| {
                let before = &code[..at];
                !["super::", "self::", "store::"]
                    .iter()
                    .any(|module| before.ends_with(module))
            });
            // Or a rename of the crate (`use sled as store;`).
            let renames_crate = ["use sled ", "use sled;", "extern crate sled"]
                .iter()
                .any(|form| code.trim_start().starts_with(form));
            if names_crate || renames_crate {
                found.push(format!("{}:{}", path.display(), n + 1));
            }
        }
    }
    assert!(
        found.is_empty(),
        "sled named outside its engine:\n{}",
        found.join("\n")
    );
}
