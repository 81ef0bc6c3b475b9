//! Builds every C and C++ program in `ffi-tests/` and `examples/` against
//! `include/wsrt.h`, links each with both the shared and the static library,
//! runs it and checks it exits 0; `ffi-tests/dlopen/` is built without the
//! library and loads `libwsrt.so` with `dlopen`. Set `VALGRIND` (e.g.
//! `VALGRIND="valgrind --error-exitcode=1 --leak-check=full"`) to run the
//! programs under it; `CC`/`CXX` pick the compilers.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `target/<profile>/deps`, where `cargo test` puts the `libwsrt.so` and
/// `libwsrt.a` it just built (`target/<profile>` only gets them from
/// `cargo build`, so it may hold stale ones).
fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .expect("target/<profile>/deps/<test>")
        .to_path_buf()
}

fn out_dir() -> PathBuf {
    let dir = lib_dir().parent().unwrap().join("ffi-tests");
    std::fs::create_dir_all(&dir).expect("create target/<profile>/ffi-tests");
    dir
}

#[derive(Clone, Copy, Debug)]
enum Link {
    Shared,
    Static,
    /// Not linked: the program `dlopen`s the library itself.
    Dlopen,
}

fn compile(source: &Path, link: Link) -> PathBuf {
    let cpp = source.extension().is_some_and(|e| e == "cpp");
    let compiler = if cpp {
        std::env::var("CXX").unwrap_or_else(|_| "g++".into())
    } else {
        std::env::var("CC").unwrap_or_else(|_| "cc".into())
    };
    let stem = source.file_stem().unwrap().to_string_lossy();
    // One directory per source directory: `ffi-tests/` and `examples/` both
    // have a `cancel.c` and a `callbacks.c`, and their tests run in parallel.
    let group = source.parent().unwrap().file_name().unwrap();
    let dir = out_dir().join(group);
    std::fs::create_dir_all(&dir).expect("create target/<profile>/ffi-tests/<dir>");
    let exe = dir.join(format!("{stem}-{link:?}").to_lowercase());
    let mut cmd = Command::new(&compiler);
    cmd.arg(if cpp { "-std=c++17" } else { "-std=c11" })
        .args([
            "-Wall",
            "-Wextra",
            "-Wpedantic",
            "-Werror",
            "-O1",
            "-g",
            "-pthread",
        ])
        .arg("-I")
        .arg(root().join("include"))
        .arg(source)
        .arg("-o")
        .arg(&exe);
    match link {
        Link::Shared => {
            cmd.arg("-L").arg(lib_dir()).arg("-lwsrt");
            cmd.arg(format!("-Wl,-rpath,{}", lib_dir().display()));
        }
        Link::Static => {
            cmd.arg(lib_dir().join("libwsrt.a"));
            cmd.args(["-ldl", "-lm"]);
        }
        Link::Dlopen => {
            cmd.arg("-ldl");
        }
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {compiler}: {e}"));
    assert!(
        out.status.success(),
        "compiling {} failed:\n{}",
        source.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

fn run(exe: &Path) {
    run_with(exe, &[]);
}

fn run_with(exe: &Path, args: &[&Path]) {
    let mut cmd = match std::env::var("VALGRIND") {
        Ok(v) if !v.trim().is_empty() => {
            let mut parts = v.split_whitespace();
            let mut cmd = Command::new(parts.next().unwrap());
            cmd.args(parts).arg(exe);
            cmd
        }
        _ => Command::new(exe),
    };
    cmd.args(args);
    // cargo runs this test with LD_LIBRARY_PATH naming target/<profile>,
    // which may hold a stale libwsrt.so from an earlier `cargo build`; it
    // would win over the programs' RUNPATH (the library just built).
    cmd.env_remove("LD_LIBRARY_PATH");
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()));
    assert!(
        out.status.success(),
        "{} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        exe.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn sources(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .unwrap_or_else(|e| panic!("read {dir}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "c" || e == "cpp"))
        .collect();
    files.sort();
    files
}

fn build_and_run_all(dir: &str) {
    let files = sources(dir);
    assert!(!files.is_empty(), "no C/C++ sources in {dir}");
    for source in &files {
        for link in [Link::Shared, Link::Static] {
            let exe = compile(source, link);
            run(&exe);
        }
    }
}

#[test]
fn ffi_tests_pass_with_shared_and_static_library() {
    build_and_run_all("ffi-tests");
}

#[test]
fn the_shared_library_works_when_loaded_with_dlopen() {
    let exe = compile(&root().join("ffi-tests/dlopen/test_dlopen.c"), Link::Dlopen);
    run_with(&exe, &[&lib_dir().join("libwsrt.so")]);
}

#[test]
fn the_shared_library_is_loaded_used_and_unloaded_a_hundred_times() {
    let exe = compile(
        &root().join("ffi-tests/dlopen/dlclose_loop.c"),
        Link::Dlopen,
    );
    run_with(&exe, &[&lib_dir().join("libwsrt.so")]);
}

#[test]
fn examples_build_and_run() {
    build_and_run_all("examples");
}

#[test]
fn header_version_macros_match_cargo_toml() {
    let header = std::fs::read_to_string(root().join("include/wsrt.h")).unwrap();
    for (part, value) in [
        ("MAJOR", env!("CARGO_PKG_VERSION_MAJOR")),
        ("MINOR", env!("CARGO_PKG_VERSION_MINOR")),
        ("PATCH", env!("CARGO_PKG_VERSION_PATCH")),
    ] {
        let line = format!("#define WSRT_VERSION_{part} {value}\n");
        assert!(header.contains(&line), "header lacks {line:?}");
    }
    // SAFETY: wsrt_version returns a static NUL-terminated string.
    let lib = unsafe { std::ffi::CStr::from_ptr(wsrt::ffi::wsrt_version()) };
    assert_eq!(lib.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
}
