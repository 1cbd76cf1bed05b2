//! The fuzz targets (`credit_node::fuzzing`, run by cargo-fuzz from `fuzz/`) as a property
//! test in `cargo test`: each target's body over its seeds, over its fuzz corpus when one
//! has been grown locally (`fuzz/corpus/<target>`, not in git), and over a bounded number
//! of inputs mutated from those by a seeded PRNG, so every run is the same.
//!
//! `cargo test --test fuzz_corpus -- --ignored write_seed_corpora` writes the seeds to
//! `fuzz/seeds/<target>/` for `cargo fuzz run` (see `fuzz/README.md`).

use std::path::PathBuf;

use credit_node::cli::records::{read_csv, read_json_lines};
use credit_node::fuzzing::{self, TARGETS};

/// Mutated inputs per target: enough to reach past the seeds, few enough for a debug
/// build to finish in seconds.
const MUTATIONS: usize = 2000;
/// Corpus files, and bytes, per target read from a locally grown corpus: the record-file
/// targets validate every line, which a debug build does at a few thousand lines a second.
const MAX_CORPUS_FILES: usize = 200;
const MAX_CORPUS_BYTES: usize = 256 * 1024;

/// A few libFuzzer-style edits: flip a bit, set a byte to an interesting value, insert
/// or delete a run, splice in part of another input, truncate.
fn mutate(rng: &mut fastrand::Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    const INTERESTING: [u8; 12] = [
        0, 1, 0x7F, 0x80, 0xFF, b'"', b',', b'\n', b'{', b'-', b'9', 0xE2,
    ];
    let mut out = input.to_vec();
    for _ in 0..=rng.usize(..4) {
        let len = out.len();
        match rng.usize(..6) {
            0 if len > 0 => {
                let i = rng.usize(..len);
                out[i] ^= 1 << rng.u32(..8);
            }
            1 if len > 0 => {
                let i = rng.usize(..len);
                out[i] = INTERESTING[rng.usize(..INTERESTING.len())];
            }
            2 => {
                let i = rng.usize(..len + 1);
                let n = 1 + rng.usize(..8);
                let byte = INTERESTING[rng.usize(..INTERESTING.len())];
                out.splice(i..i, std::iter::repeat_n(byte, n));
            }
            3 if len > 0 => {
                let i = rng.usize(..len);
                let n = 1 + rng.usize(..(len - i).min(16));
                out.drain(i..i + n);
            }
            4 if !other.is_empty() => {
                let from = rng.usize(..other.len());
                let n = 1 + rng.usize(..(other.len() - from).min(64));
                let at = rng.usize(..len + 1);
                out.splice(at..at, other[from..from + n].iter().copied());
            }
            _ => out.truncate(rng.usize(..len + 1)),
        }
    }
    out
}

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The locally grown corpus of `target`, if any, in a stable order.
fn grown_corpus(target: &str) -> Vec<Vec<u8>> {
    let Ok(dir) = std::fs::read_dir(fuzz_dir().join("corpus").join(target)) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = dir.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    let mut budget = MAX_CORPUS_BYTES;
    paths
        .iter()
        .take(MAX_CORPUS_FILES)
        .filter_map(|p| std::fs::read(p).ok())
        .take_while(|bytes| {
            budget = budget.saturating_sub(bytes.len());
            budget > 0
        })
        .collect()
}

fn exercise(target: &str, seed: u64) {
    let seeds: Vec<Vec<u8>> = fuzzing::seeds(target).into_iter().map(|(_, b)| b).collect();
    assert!(!seeds.is_empty(), "{target} has no seeds");
    let mut inputs = seeds;
    inputs.extend(grown_corpus(target));
    for input in &inputs {
        fuzzing::run(target, input);
    }
    // Printed, so a failing mutation replays from its seed (test output shows on failure).
    eprintln!("{target}: {MUTATIONS} mutations from fastrand seed {seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    for _ in 0..MUTATIONS {
        let a = &inputs[rng.usize(..inputs.len())];
        let b = &inputs[rng.usize(..inputs.len())];
        let mutated = mutate(&mut rng, a, b);
        fuzzing::run(target, &mutated);
    }
}

#[test]
fn record_files_in_json_lines_parse_or_are_refused_with_a_rule() {
    exercise("records_jsonl", 1);
}

#[test]
fn record_files_in_csv_parse_or_are_refused_with_a_rule() {
    exercise("records_csv", 2);
}

#[test]
fn validator_refusals_name_field_and_rule_and_accepted_content_is_a_fixed_point() {
    exercise("validate", 3);
}

#[test]
fn every_stored_value_type_decodes_or_fails_and_round_trips_r_sec_1() {
    exercise("decode_stored", 4);
}

#[test]
fn caller_from_certificate_der_never_panics_and_round_trips_r_node_3() {
    exercise("caller_from_der", 5);
}

#[test]
fn caller_from_san_uri_round_trips_r_node_3() {
    exercise("caller_from_uri", 6);
}

#[test]
fn every_target_has_seeds_and_a_cargo_fuzz_target() {
    for target in TARGETS {
        assert!(!fuzzing::seeds(target).is_empty(), "{target} has no seeds");
        let file = fuzz_dir().join("fuzz_targets").join(format!("{target}.rs"));
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        assert!(
            text.contains(&format!("credit_node::fuzzing::{target}(")),
            "{} does not run credit_node::fuzzing::{target}",
            file.display()
        );
    }
}

/// Found by `records_csv`: a header cell left blank made a refusal with an empty field,
/// so the provider could not tell which column was wrong.
#[test]
fn a_csv_column_without_a_name_is_refused_naming_it_r_data_2() {
    let csv = "subject_kind,,subject_id\nlegal,x,91211300MA0Q00000X\n";
    let rows: Vec<_> = read_csv(std::io::Cursor::new(csv.as_bytes().to_vec()), "2026-05")
        .unwrap()
        .collect();
    let refused = rows[0].as_ref().unwrap().draft.as_ref().unwrap_err();
    assert_eq!(refused.field, "(unnamed column)");
    assert_eq!(refused.rule, "R-DATA-2");
    fuzzing::records_csv(csv.as_bytes());
}

/// Found while adding `records_jsonl`: an unknown key or a bad `subject_kind` was echoed
/// back whole in the refusal, however long.
#[test]
fn a_long_unknown_column_or_value_is_quoted_in_part_r_data_2() {
    let long = "x".repeat(10_000);
    for line in [
        format!("{{\"{long}\":\"1\"}}\n"),
        format!("{{\"subject_kind\":\"{long}\"}}\n"),
        format!("{{\"fields\":{{\"{long}\":[]}}}}\n"),
    ] {
        let parsed: Vec<_> =
            read_json_lines(std::io::Cursor::new(line.clone().into_bytes()), "2026-05").collect();
        let refused = parsed[0].as_ref().unwrap().draft.as_ref().unwrap_err();
        assert!(refused.field.chars().count() <= 80, "{}", refused.field);
        assert!(
            refused.message.chars().count() <= 400,
            "{}",
            refused.message
        );
        fuzzing::records_jsonl(line.as_bytes());
    }
}

/// A stored child census report as postcard writes it, `depth` levels of children deep:
/// region and name empty, figures 0, one child per level, each held count 0.
fn nested_report(depth: usize) -> Vec<u8> {
    let mut bytes = vec![1u8]; // the store's format byte
    for _ in 0..depth {
        bytes.extend_from_slice(&[0, 0, 0, 0, 0, 0, 1]);
    }
    bytes.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0]);
    bytes.extend(std::iter::repeat_n(0u8, depth));
    bytes
}

/// Found by `decode_stored` (a corpus file overflowed a debug build's 2 MiB test stack):
/// a child census report holds its children's reports, and decoding one nested deeper
/// than any federation recursed without a bound until the stack overflowed, aborting the
/// process. A report is kept at most three levels deep; anything deeper is damage.
#[test]
fn a_census_report_nested_beyond_any_federation_is_corrupt_not_a_stack_overflow_r_sec_1() {
    use credit_node::store::fuzz::check_stored;
    const CHILD_CENSUS_REPORT: u8 = 9;
    assert_eq!(
        check_stored(CHILD_CENSUS_REPORT, &nested_report(3)),
        Ok(true)
    );
    assert_eq!(
        check_stored(CHILD_CENSUS_REPORT, &nested_report(200_000)),
        Ok(false)
    );
}

/// Writes every target's seeds to `fuzz/seeds/<target>/` for `cargo fuzz run`.
#[test]
#[ignore = "writes files; run by hand before fuzzing (fuzz/README.md)"]
fn write_seed_corpora() {
    for target in TARGETS {
        let dir = fuzz_dir().join("seeds").join(target);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in fuzzing::seeds(target) {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
}
