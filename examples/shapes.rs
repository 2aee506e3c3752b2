//! Writes the synthetic shapes set of tests/support/shapes.rs as a folder of PNG files, the
//! way a user's own small dataset arrives (docs/RESULTS.md, section 11):
//!
//!   cargo run --release --example shapes -- OUT_DIR [COUNT] [SIZE]
//!
//! COUNT images (default 3,000) of SIZE x SIZE x 3 (default 32), named 00000.png, 00001.png, ...

use std::path::Path;

#[path = "../tests/support/shapes.rs"]
mod shapes;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(dir) = args.get(1) else {
        eprintln!("usage: shapes OUT_DIR [COUNT] [SIZE]");
        std::process::exit(2);
    };
    let count: usize = args.get(2).map_or(3000, |s| s.parse().expect("COUNT"));
    let size: usize = args.get(3).map_or(32, |s| s.parse().expect("SIZE"));
    let data = shapes::shapes_dataset(count, size, 1);
    std::fs::create_dir_all(dir).expect("creating the folder");
    for i in 0..count {
        let image = data.float_slice(i, 1, tch::Device::Cpu).expect("an image");
        gran::png::write_grid(&Path::new(dir).join(format!("{i:05}.png")), &image, 1).expect("writing a PNG");
    }
    println!("{dir}: {count} images of {size}x{size}x3");
}
