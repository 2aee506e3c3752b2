//! Nothing to link: this crate holds the tests that compare include/gran.h and
//! include/gran_runtime.h with cbindgen's generation (tests/). `GRAN_BLESS=1 cargo test -p
//! gran-header` rewrites both headers (`make header`).
