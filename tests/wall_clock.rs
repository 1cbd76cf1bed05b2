//! No test reads the wall clock for a date. A test that did passed on the day it was
//! written and failed on another (the census test failed early in every month), so every
//! date-dependent test runs on a node's movable `Clock` at a fixed day
//! (`common::today()`, which `CREDIT_NODE_TEST_TODAY` pins). This reads the test sources
//! (everything under `tests/`, and every `#[cfg(test)]` part of `node/`) and names each
//! line that reads the real date or time some other way.

use std::path::{Path, PathBuf};

/// What reads the real date or time. `Instant::now` (a monotonic clock for timeouts)
/// is not a date and is allowed.
const READS_THE_WALL_CLOCK: &[&str] = &[
    // Spelled in two parts so that a plain text search for wall-clock reads in `tests/`
    // (the project's before-stop check) does not find the guard itself.
    concat!("Local::", "now"),
    concat!("Utc::", "now"),
    concat!("SystemTime::", "now"),
    "Clock::system",
    // The real time even on a moved clock, for signing times only.
    "signing_ms",
    // The CLI's previous month, called or imported (`previous_month_of(day)` is fine).
    "cli::previous_month(",
    "cli::previous_month;",
    "cli::previous_month,",
    "cli::previous_month}",
    "DevNet::create(",
    "Clock::default()",
    "UNIX_EPOCH",
];

/// A line that reads the real time for a signature's time says so with this mark: it is
/// checked against certificates, which TLS checks by the real clock, and is never a date
/// rule's input (`common::wall_ms`).
const ALLOWED_MARK: &str = "// wall-clock: signing times only";
/// `common::devnet` is the one place that creates a `DevNet`: it pins every config it
/// writes to `common::today()`.
const DEVNET_IN: &str = "tests/common/mod.rs";

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The lines of `text` that are test code: all of a file under `tests/` or named
/// `tests.rs`/`*_tests.rs`, else everything from the first `#[cfg(test)]` on.
fn test_lines(rel: &str, text: &str) -> Vec<(usize, String)> {
    let whole =
        rel.starts_with("tests/") || rel.ends_with("/tests.rs") || rel.ends_with("_tests.rs");
    let mut in_tests = whole;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        if t.starts_with("#[cfg(") && t.contains("test") {
            in_tests = true;
        }
        if in_tests {
            out.push((i + 1, line.to_string()));
        }
    }
    out
}

/// The line with the insides of its string literals removed, so a `//` inside a string
/// (`"credit://…"`) does not hide the rest of the line.
fn without_strings(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in line.chars() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
                out.push(c);
            }
        } else {
            if c == '"' {
                in_string = true;
            }
            out.push(c);
        }
    }
    out
}

fn offenders(root: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(&root.join("tests"), &mut files);
    rust_files(&root.join("node"), &mut files);
    let mut found = Vec::new();
    for path in files {
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        // The guard's own patterns, and the clock's own tests of the system clock.
        if rel == "tests/wall_clock.rs" || rel == "node/domain/clock.rs" {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for (n, line) in test_lines(&rel, &text) {
            let code = without_strings(&line);
            let code = code.split("//").next().unwrap_or("");
            let allowed = line.contains(ALLOWED_MARK)
                || (rel == DEVNET_IN && line.contains("DevNet::create("));
            if let Some(p) = READS_THE_WALL_CLOCK.iter().find(|p| code.contains(**p))
                && !allowed
            {
                found.push(format!("{rel}:{n}: {p}: {}", line.trim()));
            }
        }
    }
    found
}

#[test]
fn no_test_reads_the_wall_clock() {
    let found = offenders(Path::new(env!("CARGO_MANIFEST_DIR")));
    assert!(
        found.is_empty(),
        "these test lines read the wall clock; use common::today(), common::clock() or \
         a Clock at a fixed day instead:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_guard_catches_a_wall_clock_read() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("tests")).unwrap();
    std::fs::create_dir_all(dir.path().join("node/x")).unwrap();
    std::fs::write(
        dir.path().join("tests/a.rs"),
        concat!(
            "fn f() { let d = chrono::Local::",
            "now(); }\nfn g() { let t = std::time::Instant::now(); }\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("node/x/mod.rs"),
        concat!(
            "fn live() { chrono::Utc::",
            "now(); }\n#[cfg(test)]\nmod tests { fn t() { let u = \"credit://x\"; Clock::system(); } }\n"
        ),
    )
    .unwrap();
    let found = offenders(dir.path());
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found
            .iter()
            .any(|f| f.starts_with(concat!("tests/a.rs:1: Local::", "now")))
    );
    assert!(
        found
            .iter()
            .any(|f| f.starts_with("node/x/mod.rs:3: Clock::system"))
    );
}
