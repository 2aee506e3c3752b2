//! The check behind the tests in tests/: a checked-in C header must equal cbindgen's generation
//! from the sources. `GRAN_BLESS=1 cargo test -p gran-header` rewrites the headers instead
//! (`make header`).

use std::path::{Path, PathBuf};

/// The workspace root (this crate's parent folder).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace root").to_path_buf()
}

/// Generates the header that `config` (a cbindgen.toml) describes from `sources` (cbindgen reads
/// each and follows its modules) and compares it with `header`, all relative to the workspace
/// root. With GRAN_BLESS set, writes it to `header` instead. Panics, naming the header, when
/// the two differ.
pub fn check(config: &str, sources: &[&str], header: &str) {
    let root = root();
    let config = cbindgen::Config::from_file(root.join(config)).expect("a cbindgen.toml");
    let builder = sources.iter().fold(cbindgen::Builder::new().with_config(config), |b, s| b.with_src(root.join(s)));
    let mut fresh = Vec::new();
    builder.generate().expect("cbindgen generates the header").write(&mut fresh);
    let fresh = String::from_utf8(fresh).expect("UTF-8 header");
    let path = root.join(header);
    if std::env::var_os("GRAN_BLESS").is_some() {
        std::fs::write(&path, &fresh).unwrap_or_else(|e| panic!("writing {header}: {e}"));
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == fresh,
        "{header} is out of date with its sources: regenerate it with `make header` and commit it"
    );
}
