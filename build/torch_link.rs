//! Build script shared by every crate whose binaries or tests link libtorch
//! (`build = "../build/torch_link.rs"` in their Cargo.toml).
//!
//! libtorch_cuda exports nothing we call directly, so a plain link drops it and CUDA stays
//! invisible at run time (DESIGN.md, fixed choices). We force it in with `--no-as-needed` when
//! the torch we build against has it, and add a RUNPATH to that torch/lib so the binary runs
//! here without LD_LIBRARY_PATH (on another machine LD_LIBRARY_PATH takes precedence).
use std::path::PathBuf;
use std::process::Command;

/// `torch/lib` of the libtorch we build against (`LIBTORCH`, else the `torch` of `python3`).
pub fn torch_lib_dir() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("LIBTORCH") {
        return Some(PathBuf::from(dir).join("lib"));
    }
    let python = std::env::var("PYTHON_SYS_EXECUTABLE").unwrap_or_else(|_| "python3".into());
    let out = Command::new(python)
        .args([
            "-c",
            "import torch, os; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))",
        ])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

#[allow(dead_code)]
pub fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-env-changed=PYTHON_SYS_EXECUTABLE");
    if let Some(dir) = torch_lib_dir() {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir.display());
        if dir.join("libtorch_cuda.so").exists() {
            println!("cargo:rustc-link-search=native={}", dir.display());
            println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
            println!("cargo:rustc-link-arg=-ltorch_cuda");
            println!("cargo:rustc-link-arg=-Wl,--as-needed");
        }
    }
}
