//! Link-time set-up for libgran.
//!
//! * rpath to the libtorch `lib/` folder that torch-sys built against, so `libgran.so`, the
//!   tests and the examples find libtorch at run time without LD_LIBRARY_PATH;
//! * `torch_cuda` linked with `--no-as-needed`: nothing references its symbols directly, so the
//!   linker would otherwise drop it and CUDA would silently be unavailable at run time;
//! * csrc/*.cpp compiled against the same libtorch headers: the libtorch calls gran needs that
//!   tch has no usable binding for (the fused Adam kernel; leaky ReLU with a chosen slope;
//!   pinning host memory without the deprecated device argument; bfloat16 autocast on any
//!   device; CUDA graph capture and replay; cuDNN's deterministic flag; the multi-tensor lerp of the averaged generator).
//! * csrc/cuda_graph.cpp with GRAN_CUDA_GRAPHS when the CUDA runtime headers are found beside
//!   libtorch (the PyPI wheel's nvidia/cu13/include; `crt/` from triton's copy of the same
//!   headers, which the cu13 wheel lacks) or under $CUDA_HOME: it then links libc10_cuda. Without
//!   them it compiles to calls that fail cleanly (src/cuda_graph.rs: a `Device` error).

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=gran.map");
    // Export the gran_ API and nothing else (see gran.map).
    println!("cargo:rustc-cdylib-link-arg=-Wl,--version-script={}/gran.map", env!("CARGO_MANIFEST_DIR"));
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let lib = std::env::var("DEP_TCH_LIBTORCH_LIB")
        .expect("DEP_TCH_LIBTORCH_LIB is not set: torch-sys found no libtorch (see README: make setup)");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    // libtorch's headers sit beside its lib/ folder (torch/include).
    println!("cargo:rerun-if-changed=csrc");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    let include = std::path::Path::new(&lib).parent().expect("libtorch lib/ has a parent").join("include");
    let cuda = std::path::Path::new(&lib).join("libtorch_cuda.so").exists();
    let cuda_include = if cuda { cuda_headers(&lib) } else { None };
    let mut build = cc::Build::new();
    if let Some((runtime, crt)) = &cuda_include {
        build.include(runtime).define("GRAN_CUDA_GRAPHS", None);
        if let Some(crt) = crt {
            build.flag("-idirafter").flag(crt.to_str().expect("utf-8 path"));
        }
        println!("cargo:rustc-link-lib=dylib=c10_cuda");
    } else {
        println!("cargo:warning=no CUDA runtime headers found beside libtorch: gran is built without CUDA graphs");
    }
    against_libtorch(&mut build, &include)
        .file("csrc/fused_adam.cpp")
        .file("csrc/leaky_relu.cpp")
        .file("csrc/pin_memory.cpp")
        .file("csrc/autocast.cpp")
        .file("csrc/non_finite.cpp")
        .file("csrc/cuda_graph.cpp")
        .file("csrc/determinism.cpp")
        .file("csrc/foreach_lerp.cpp")
        .file("csrc/mkldnn_conv.cpp")
        .compile("gran_torch_ext");
    process_groups(&include, cuda_include.as_ref(), &lib);
    if cuda {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
    // The shared library's soname, so that `make install` can lay out versioned names.
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libgran.so.0");
}

/// What every shim needs to compile against libtorch: C++17, PIC, its headers, its ABI.
fn against_libtorch<'a>(build: &'a mut cc::Build, include: &std::path::Path) -> &'a mut cc::Build {
    build
        .cpp(true)
        .pic(true)
        .include(include)
        .include(include.join("torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag(format!(
            "-D_GLIBCXX_USE_CXX11_ABI={}",
            std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".into())
        ))
        .flag("-DGLOG_USE_GLOG_EXPORT")
        .flag_if_supported("-Wno-unused-parameter")
}

/// csrc/dist.cpp, compiled on its own (its defines and include folders touch no other shim):
/// with Gloo where gloo's headers are (the Makefile unpacks Debian's libgloo-dev into the venv;
/// GRAN_GLOO_INCLUDE overrides), else a stub that refuses to make a group; with NCCL where the
/// CUDA runtime headers, CCCL's (`nv/target`: the nvidia-cuda-cccl wheel the Makefile adds) and
/// nccl.h (the nvidia-nccl wheel torch pulls in) are all found beside libtorch. NCCL's code is
/// libtorch_cuda's (and libnccl, which it loads).
fn process_groups(
    include: &std::path::Path,
    cuda: Option<&(std::path::PathBuf, Option<std::path::PathBuf>)>,
    lib: &str,
) {
    println!("cargo:rerun-if-env-changed=GRAN_GLOO_INCLUDE");
    println!("cargo:rerun-if-env-changed=GRAN_REQUIRE_GLOO");
    let gloo = std::env::var("GRAN_GLOO_INCLUDE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/gloo/usr/include"));
    let mut build = cc::Build::new();
    if gloo.join("gloo/config.h").exists() {
        build.include(&gloo).define("GRAN_GLOO", None).define("USE_C10D_GLOO", None);
    } else if std::env::var_os("GRAN_REQUIRE_GLOO").is_some_and(|v| v == "1") {
        panic!("GRAN_REQUIRE_GLOO=1 but there are no gloo headers at {} (make setup fetches them)", gloo.display());
    } else {
        println!(
            "cargo:warning=no gloo headers at {}: gran is built without process groups (make setup fetches them)",
            gloo.display()
        );
    }
    let nccl = std::path::Path::new(lib).parent().and_then(|t| t.parent()).map(|site| site.join("nvidia/nccl/include"));
    match (cuda, nccl.filter(|n| n.join("nccl.h").exists())) {
        (Some((runtime, crt)), Some(nccl)) if runtime.join("nv/target").exists() => {
            build.include(runtime).include(nccl).define("GRAN_NCCL", None).define("USE_C10D_NCCL", None);
            if let Some(crt) = crt {
                build.flag("-idirafter").flag(crt.to_str().expect("utf-8 path"));
            }
        }
        (Some(_), _) => {
            println!("cargo:warning=no nccl.h or CCCL headers (nv/target) beside libtorch: gran is built without NCCL")
        }
        _ => {}
    }
    against_libtorch(&mut build, include)
        .flag_if_supported("-Wno-interference-size")
        .file("csrc/dist.cpp")
        .compile("gran_dist");
}

/// The CUDA runtime headers matching libtorch's CUDA (cuda_runtime_api.h), and a folder with the
/// `crt/` headers when that one lacks them: the PyPI wheel's site-packages/nvidia/cu*/include
/// (with triton's backends/nvidia/include for crt/), else $CUDA_HOME/include.
fn cuda_headers(lib: &str) -> Option<(std::path::PathBuf, Option<std::path::PathBuf>)> {
    use std::path::{Path, PathBuf};
    println!("cargo:rerun-if-env-changed=CUDA_HOME");
    let site = Path::new(lib).parent()?.parent()?;
    let mut candidates: Vec<PathBuf> = std::fs::read_dir(site.join("nvidia"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("include"))
        .filter(|p| {
            p.file_name().is_some()
                && p.parent().and_then(|d| d.file_name()).is_some_and(|n| n.to_string_lossy().starts_with("cu"))
        })
        .collect();
    candidates.sort();
    candidates.reverse(); // the newest CUDA first (cu13 before cu12)
    if let Ok(home) = std::env::var("CUDA_HOME") {
        candidates.push(Path::new(&home).join("include"));
    }
    let runtime = candidates.into_iter().find(|p| p.join("cuda_runtime_api.h").exists())?;
    if runtime.join("crt/host_config.h").exists() {
        return Some((runtime, None));
    }
    let crt = site.join("triton/backends/nvidia/include");
    crt.join("crt/host_config.h").exists().then_some((runtime, Some(crt)))
}
