//! What libgran (the training library, on libtorch) and libgran_runtime (the dependency-free
//! sampling library) share, so that the two never drift apart: the counter-based random
//! numbers behind every latent, the checksum gran files carry, the plain types and constants
//! of the C interface both headers declare, and the C boundary's machinery (panic guard, last
//! error, pointer checks, versioned structs, handle registries, the log sink), the kinds of
//! generator upsampling, and atomic file writes.
//!
//! Pure Rust: it builds for WebAssembly as it does natively (atomic file writes, the one part
//! that calls the operating system, are for Unix).

pub mod abi;
#[cfg(unix)]
pub mod atomic_file;
pub mod boundary;
pub mod checksum;
pub mod classes;
pub mod log;
pub mod registry;
pub mod rng;
pub mod upsampling;
