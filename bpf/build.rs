//! Compiles `router.c` with clang into `$OUT_DIR/router.o` (BPF bytecode with
//! BTF), which `src/router.rs` embeds, and `xdpgen.c` (the forwarding
//! benchmark's traffic generator) into `$OUT_DIR/xdpgen.o`, which
//! `examples/forward-bench.rs` embeds. Needs clang and the kernel/libbpf
//! headers (Debian: `clang libbpf-dev linux-libc-dev`); no nightly Rust.
//!
//! `CLANG` names another compiler; `BPF_EXTRA_CFLAGS` adds flags.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    match build() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            // Cargo shows a failed build script's stderr.
            eprintln!("error: building the BPF programs: {message}");
            ExitCode::FAILURE
        }
    }
}

fn build() -> Result<(), String> {
    println!("cargo::rerun-if-env-changed=CLANG");
    println!("cargo::rerun-if-env-changed=BPF_EXTRA_CFLAGS");
    for name in ["router", "xdpgen"] {
        compile(name).map_err(|e| format!("bpf/{name}.c: {e}"))?;
    }
    Ok(())
}

/// `<name>.c` into `$OUT_DIR/<name>.o`.
fn compile(name: &str) -> Result<(), String> {
    println!("cargo::rerun-if-changed={name}.c");

    let out_dir = PathBuf::from(env::var_os("OUT_DIR").ok_or("OUT_DIR is not set")?);
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").ok_or("CARGO_MANIFEST_DIR is not set")?);
    let clang = env::var("CLANG").unwrap_or_else(|_| "clang".to_owned());
    let source = manifest_dir.join(format!("{name}.c"));
    let object = out_dir.join(format!("{name}.o"));

    let mut cmd = Command::new(&clang);
    cmd.args(["-target", "bpf", "-O2", "-g", "-Wall", "-Werror"]);
    // <linux/bpf.h> includes <asm/types.h>, which Debian keeps under the
    // host's multiarch directory; the BPF target does not search it itself.
    if let Some(dir) = multiarch_include() {
        cmd.arg("-I").arg(dir);
    }
    if let Ok(extra) = env::var("BPF_EXTRA_CFLAGS") {
        cmd.args(extra.split_whitespace());
    }
    cmd.arg("-c").arg(&source).arg("-o").arg(&object);

    let output = cmd.output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            format!(
                "`{clang}` was not found. Install clang and the BPF headers \
                 (Debian/Ubuntu: `apt-get install clang llvm libbpf-dev`), or set CLANG"
            )
        } else {
            format!("cannot run `{clang}`: {e}")
        }
    })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let hint = if stderr.contains("bpf/bpf_helpers.h") || stderr.contains("asm/types.h") {
            "\n(missing headers: Debian/Ubuntu `apt-get install libbpf-dev linux-libc-dev`)"
        } else {
            ""
        };
        return Err(format!(
            "`{cmd:?}` failed ({}):\n{stderr}{hint}",
            output.status
        ));
    }
    Ok(())
}

/// `/usr/include/<arch>-linux-gnu` for the machine that builds, if present.
fn multiarch_include() -> Option<PathBuf> {
    let arch = env::var("CARGO_CFG_TARGET_ARCH").ok()?;
    let arch = match arch.as_str() {
        "x86" => "i386",
        other => other,
    };
    let dir = Path::new("/usr/include").join(format!("{arch}-linux-gnu"));
    dir.is_dir().then_some(dir)
}
