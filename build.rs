//! Link-time set-up for libgran.
//!
//! * rpath to the libtorch `lib/` folder that torch-sys built against, so `libgran.so`, the
//!   tests and the examples find libtorch at run time without LD_LIBRARY_PATH;
//! * `torch_cuda` linked with `--no-as-needed`: nothing references its symbols directly, so the
//!   linker would otherwise drop it and CUDA would silently be unavailable at run time.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=gran.map");
    // Export the gran_ API and nothing else (see gran.map).
    println!("cargo:rustc-cdylib-link-arg=-Wl,--version-script={}/gran.map", env!("CARGO_MANIFEST_DIR"));
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        println!("cargo:warning=DEP_TCH_LIBTORCH_LIB not set: no rpath to libtorch");
        return;
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    if std::path::Path::new(&lib).join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
    // The shared library's soname, so that `make install` can lay out versioned names.
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libgran.so.0");
}
