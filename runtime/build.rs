//! Link-time set-up for libgran_runtime: export the gran_ API and nothing else (gran_runtime.map),
//! and give the shared library its soname.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=gran_runtime.map");
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.contains("linux") {
        let dir = env!("CARGO_MANIFEST_DIR");
        println!("cargo:rustc-cdylib-link-arg=-Wl,--version-script={dir}/gran_runtime.map");
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libgran_runtime.so.0");
    }
}
