//! The model crate's build script: libtorch linking as every crate does (`../build/torch_link.rs`),
//! plus the CUDA-graph shim `csrc/cuda_graph.cpp` when the libtorch we build against has CUDA and
//! the CUDA runtime headers are found (torch's pip wheel brings them as `nvidia/cu13/include`,
//! its `crt/` comes from the `nvidia-cuda-crt` wheel that `just venv` installs; or set
//! `CUDA_INCLUDE`). Without them the engine decodes without graphs (cfg `quantlab_cuda_graph`
//! unset).
#[path = "../build/torch_link.rs"]
mod torch_link;

use std::path::PathBuf;

fn cuda_include(torch_lib: &std::path::Path) -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("CUDA_INCLUDE") {
        return Some(PathBuf::from(dir));
    }
    // site-packages/torch/lib -> site-packages/nvidia/cu*/include (cuda_runtime_api.h)
    let site = torch_lib.parent()?.parent()?;
    let nvidia = site.join("nvidia");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&nvidia)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("include")))
        .chain([nvidia.join("cuda_runtime/include")])
        .filter(|d| d.join("cuda_runtime_api.h").exists() && d.join("crt/host_config.h").exists())
        .collect();
    dirs.sort();
    dirs.pop()
}

fn main() {
    torch_link::main();
    println!("cargo:rerun-if-changed=csrc/cuda_graph.cpp");
    println!("cargo:rerun-if-env-changed=CUDA_INCLUDE");
    println!("cargo:rustc-check-cfg=cfg(quantlab_cuda_graph)");
    println!("cargo:rerun-if-env-changed=QUANTLAB_NO_CUDA_GRAPH");
    if std::env::var("QUANTLAB_NO_CUDA_GRAPH").is_ok() {
        return;
    }
    let Some(lib) = torch_link::torch_lib_dir() else {
        return;
    };
    if !lib.join("libtorch_cuda.so").exists() || !lib.join("libc10_cuda.so").exists() {
        return;
    }
    let Some(cuda_inc) = cuda_include(&lib) else {
        println!("cargo:warning=CUDA runtime headers not found (set CUDA_INCLUDE): decoding without CUDA graphs");
        return;
    };
    let torch_inc = lib
        .parent()
        .expect("torch/lib has a parent")
        .join("include");
    cc::Build::new()
        .cpp(true)
        .std("c++17")
        .file("csrc/cuda_graph.cpp")
        .include(&torch_inc)
        .include(torch_inc.join("torch/csrc/api/include"))
        .include(&cuda_inc)
        .define("_GLIBCXX_USE_CXX11_ABI", "1")
        .flag_if_supported("-w")
        .compile("quantlab_cuda_graph");
    println!("cargo:rustc-link-search=native={}", lib.display());
    println!("cargo:rustc-link-lib=dylib=c10_cuda");
    println!("cargo:rustc-link-lib=dylib=torch_cuda");
    println!("cargo:rustc-link-lib=dylib=c10");
    println!("cargo:rustc-cfg=quantlab_cuda_graph");
}
