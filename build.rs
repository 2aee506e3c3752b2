//! Link-time set-up for libgran.
//!
//! * rpath to the libtorch `lib/` folder that torch-sys built against, so `libgran.so`, the
//!   tests and the examples find libtorch at run time without LD_LIBRARY_PATH;
//! * `torch_cuda` linked with `--no-as-needed`: nothing references its symbols directly, so the
//!   linker would otherwise drop it and CUDA would silently be unavailable at run time;
//! * csrc/*.cpp compiled against the same libtorch headers: the libtorch calls gran needs that
//!   tch has no usable binding for (the fused Adam kernel; leaky ReLU with a chosen slope;
//!   pinning host memory without the deprecated device argument; bfloat16 autocast on any
//!   device).

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
    cc::Build::new()
        .cpp(true)
        .pic(true)
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag(format!(
            "-D_GLIBCXX_USE_CXX11_ABI={}",
            std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".into())
        ))
        .flag("-DGLOG_USE_GLOG_EXPORT")
        .flag_if_supported("-Wno-unused-parameter")
        .file("csrc/fused_adam.cpp")
        .file("csrc/leaky_relu.cpp")
        .file("csrc/pin_memory.cpp")
        .file("csrc/autocast.cpp")
        .file("csrc/non_finite.cpp")
        .compile("gran_torch_ext");
    if std::path::Path::new(&lib).join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
    // The shared library's soname, so that `make install` can lay out versioned names.
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libgran.so.0");
}
