//! The source's layers import one way: `sync` ← `task` ← `sched` ←
//! {`runtime`, `join`, `scope`, `group`, `time`, `wait`} ← `ffi`
//! (`docs/design.md`). This reads every
//! `crate::` path in `src/` (outside comments and the unit tests at the end
//! of a file) and fails on an import from a higher layer, on `sync/`
//! naming any other part of the crate, and on a cycle between the modules
//! of the third layer. Cycles inside `sched/` are allowed (rayon-core has
//! one between its registry and its latches).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layer of a top-level module; anything else after `crate::` is a
/// re-export of the crate root, the top.
fn layer(module: &str) -> usize {
    match module {
        "sync" => 0,
        "task" => 1,
        "sched" => 2,
        "runtime" | "join" | "scope" | "group" | "time" | "wait" | "error" => 3,
        "ffi" => 4,
        _ => 5,
    }
}

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

/// The top-level module a file belongs to (`lib` for `src/lib.rs`).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

/// The top-level modules a file names through `crate::`, with the line of
/// each, skipping comments and the `#[cfg(test)]`/`#[cfg(all(test, ..))]`
/// modules (unit tests may use the whole crate).
fn imports(text: &str) -> Vec<(usize, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        let code = line.trim_start();
        let test_cfg = code.starts_with("#[cfg(test)]") || code.starts_with("#[cfg(all(test");
        if test_cfg
            && lines
                .get(n + 1)
                .is_some_and(|l| l.trim_start().starts_with("mod "))
        {
            break;
        }
        if code.starts_with("//") {
            continue;
        }
        let code = code.split("//").next().unwrap();
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            if !rest[..at].ends_with('$') {
                for name in first_segments(after, &lines[n + 1..]) {
                    found.push((n + 1, name));
                }
            }
            rest = after;
        }
    }
    found
}

/// The first segment of the path that starts `text` (`sched` of
/// `sched::pool::Pool`), or of each path in a group (`{Error, Runtime}`,
/// which may go on over the `next` lines).
fn first_segments(text: &str, next: &[&str]) -> Vec<String> {
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let Some(group) = text.strip_prefix('{') else {
        return vec![ident(text)]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect();
    };
    let mut inside = String::from(group);
    for line in next {
        if inside.contains('}') {
            break;
        }
        inside.push_str(line);
    }
    let mut names = Vec::new();
    let mut depth = 0;
    let mut start = true;
    for c in inside.chars() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => start = true,
            c if start && (c.is_alphanumeric() || c == '_') => {
                names.push(c.to_string());
                start = false;
            }
            c if !start && depth == 0 && (c.is_alphanumeric() || c == '_') => {
                if let Some(last) = names.last_mut() {
                    if !last.contains(':') {
                        last.push(c);
                    }
                }
            }
            ':' if depth == 0 => {
                if let Some(last) = names.last_mut() {
                    last.push(':');
                }
            }
            _ => {}
        }
    }
    names
        .into_iter()
        .map(|n| {
            n.trim_end_matches(':')
                .split(':')
                .next()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[test]
fn imports_point_down_the_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    assert!(files.len() > 20, "found only {} files in src/", files.len());
    let mut wrong = Vec::new();
    let mut third: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let module = module_of(&src, file);
        let text = std::fs::read_to_string(file).unwrap();
        for (line, target) in imports(&text) {
            let at = format!("{}:{line}", file.strip_prefix(&src).unwrap().display());
            if module == "sync" && target != "sync" {
                wrong.push(format!("{at}: sync/ names crate::{target}"));
            } else if layer(&target) > layer(&module) {
                wrong.push(format!(
                    "{at}: {module} (layer {}) imports crate::{target} (layer {})",
                    layer(&module),
                    layer(&target)
                ));
            }
            if layer(&module) == 3 && layer(&target) == 3 && target != module {
                third.entry(module.clone()).or_default().insert(target);
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layers:\n{}",
        wrong.join("\n")
    );
    // No cycle among the modules of the third layer: repeatedly drop one
    // that imports none of the others left.
    let mut left: BTreeSet<String> = ["runtime", "join", "scope", "group", "time", "wait", "error"]
        .map(String::from)
        .into();
    while let Some(free) = left
        .iter()
        .find(|m| third.get(*m).is_none_or(|t| t.is_disjoint(&left)))
        .cloned()
    {
        left.remove(&free);
    }
    assert!(left.is_empty(), "a cycle among {left:?}: {third:?}");
}

#[test]
fn the_scanner_sees_imports_and_skips_comments_and_unit_tests() {
    let text = "use crate::sched::pool::Pool;\n// crate::ffi in a comment\nlet x = crate::Runtime::new(); // crate::join\nuse crate::{Error,\n    task::TaskState, sync::{a, b}};\n#[cfg(test)]\nmod tests {\n    use crate::runtime;\n}\n";
    let names: Vec<String> = imports(text).into_iter().map(|(_, n)| n).collect();
    assert_eq!(names, ["sched", "Runtime", "Error", "task", "sync"]);
}
