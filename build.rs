//! Generates `include/wsrt.h` with cbindgen from `src/ffi/`.
//!
//! The header is committed: the file is rewritten only when its content
//! changes, and `.ci/run` fails if a build changed it (run `cargo build`
//! and commit the header after editing the C ABI).

use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=WSRT_SONAME");

    // The installed shared library's soname: 0.x releases may break the
    // ABI at each minor version, so it carries MAJOR.MINOR. Only `make
    // install` asks for it (WSRT_SONAME=1) and installs the matching
    // symlinks; a plain `cargo build` leaves none, so that a program linked
    // against target/release/libwsrt.so loads that very file.
    let soname = std::env::var("WSRT_SONAME").is_ok_and(|v| v == "1");
    if soname && std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!(
            "cargo:rustc-cdylib-link-arg=-Wl,-soname,libwsrt.so.{}.{}",
            std::env::var("CARGO_PKG_VERSION_MAJOR").expect("cargo sets the version"),
            std::env::var("CARGO_PKG_VERSION_MINOR").expect("cargo sets the version"),
        );
    }

    let crate_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let mut config = cbindgen::Config::from_file(Path::new(&crate_dir).join("cbindgen.toml"))
        .expect("cbindgen.toml is valid");
    let version = |part: &str| {
        std::env::var(format!("CARGO_PKG_VERSION_{part}")).expect("cargo sets the version")
    };
    config.after_includes = Some(format!(
        "\n/** The version of this header; `wsrt_version()` gives the library's. */\n\
         #define WSRT_VERSION_MAJOR {}\n#define WSRT_VERSION_MINOR {}\n#define WSRT_VERSION_PATCH {}\n\
         #define WSRT_VERSION_STRING \"{}\"",
        version("MAJOR"),
        version("MINOR"),
        version("PATCH"),
        std::env::var("CARGO_PKG_VERSION").expect("cargo sets the version"),
    ));

    let bindings = match cbindgen::Builder::new()
        .with_crate(&crate_dir)
        .with_config(config)
        .generate()
    {
        Ok(bindings) => bindings,
        Err(e) => panic!("cbindgen failed: {e}"),
    };
    let path = Path::new(&crate_dir).join("include").join("wsrt.h");
    let mut generated = Vec::new();
    bindings.write(&mut generated);
    if std::fs::read(&path).ok().as_deref() != Some(&generated[..]) {
        std::fs::create_dir_all(path.parent().expect("include/ has a parent"))
            .expect("create include/");
        std::fs::write(&path, generated).expect("write include/wsrt.h");
    }
}
