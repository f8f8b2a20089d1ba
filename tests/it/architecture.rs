//! The layering of `src/` that `lib.rs` describes holds: every top-level
//! module imports only modules below it, so there is no import cycle and no
//! import from a lower layer to a higher one. (A new module must be placed in
//! `LAYERS`; the test names any module it does not know.)

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// From the bottom up: a module may use only modules listed before it.
const LAYERS: &[&str] = &[
    "phase",
    "crypto",
    "error_text",
    "lock",
    "reconnect",
    "egress",
    "config",
    "telemetry",
    "db",
    "readiness",
    "profile",
    "job",
    "metrics",
    "traffic",
    "credentials",
    "executor",
    "queue",
    "outbox",
    "worker",
    "api",
    "app",
    "cli",
];

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

/// The top-level module a file belongs to (`src/worker/lane.rs` → `worker`).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).unwrap();
    let first = relative.components().next()?.as_os_str().to_str()?.trim_end_matches(".rs").to_owned();
    (!matches!(first.as_str(), "lib" | "main" | "bin")).then_some(first)
}

/// Every top-level module a file names as `crate::<module>`, in code (comments
/// and doc links are skipped).
fn uses(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in text.lines().map(str::trim_start).filter(|l| !l.starts_with("//")) {
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            match after.strip_prefix('{') {
                // `crate::{a::X, b}`: the first name of each item at the top level.
                Some(group) => {
                    let mut depth = 0;
                    let mut item_start = true;
                    for (i, c) in group.char_indices() {
                        match c {
                            '{' => depth += 1,
                            '}' if depth == 0 => break,
                            '}' => depth -= 1,
                            ',' if depth == 0 => item_start = true,
                            c if item_start && (c.is_ascii_alphanumeric() || c == '_') => {
                                found.insert(leading_name(&group[i..]));
                                item_start = false;
                            }
                            _ => {}
                        }
                    }
                }
                None => {
                    let name = leading_name(after);
                    if !name.is_empty() {
                        found.insert(name);
                    }
                }
            }
            rest = after;
        }
    }
    found
}

fn leading_name(text: &str) -> String {
    text.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect()
}

#[test]
fn names_are_read_from_paths_and_groups() {
    let found = uses("use crate::{job::Phase, metrics::{A, B}};\n// crate::api\nlet x = crate::queue::x();");
    assert_eq!(found, BTreeSet::from(["job".to_owned(), "metrics".to_owned(), "queue".to_owned()]));
}

#[test]
fn every_module_imports_only_modules_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let rank = |module: &str| LAYERS.iter().position(|m| *m == module);
    let mut problems = Vec::new();
    for file in &files {
        let Some(module) = module_of(&src, file) else { continue };
        let Some(own) = rank(&module) else {
            problems.push(format!("{}: module `{module}` has no place in LAYERS", file.display()));
            continue;
        };
        for used in uses(&std::fs::read_to_string(file).unwrap()) {
            match rank(&used) {
                Some(theirs) if theirs < own || used == module => {}
                Some(_) => {
                    problems.push(format!("{}: `{module}` imports `{used}`, which is not below it", file.display()))
                }
                None => problems.push(format!("{}: `crate::{used}` is not a module in LAYERS", file.display())),
            }
        }
    }
    assert!(problems.is_empty(), "the layering is broken:\n{}", problems.join("\n"));
}

#[test]
fn every_module_of_lib_rs_has_a_layer_and_a_line_in_its_map() {
    let lib = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    let declared: BTreeSet<&str> = lib.lines().filter_map(|l| l.strip_prefix("pub mod ")?.strip_suffix(';')).collect();
    let layered: BTreeSet<&str> = LAYERS.iter().copied().collect();
    assert_eq!(declared, layered, "lib.rs declares these modules; LAYERS must list the same");
    for module in declared {
        assert!(lib.contains(&format!("| [`{module}`] |")), "lib.rs's layout map has no line for `{module}`");
    }
}
