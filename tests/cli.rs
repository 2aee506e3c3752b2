//! The `gran` command-line tool, run as a user runs it: the built binary, its exit codes, its
//! files and its output. Tiny models (a sixteenth of the paper's widths, a few steps) on the
//! built-in digits, one libtorch thread.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const GRAN: &str = env!("CARGO_BIN_EXE_gran");

fn data_dir() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist10k").display().to_string()
}

/// A fresh folder for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gran-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn gran_command(args: &[&str]) -> Command {
    let mut c = Command::new(GRAN);
    c.args(args).env("OMP_NUM_THREADS", "1").env_remove("LD_LIBRARY_PATH");
    c
}

fn gran(args: &[&str]) -> Output {
    gran_command(args).output().expect("the gran binary runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs and expects success; returns stdout.
fn ok(args: &[&str]) -> String {
    let o = gran(args);
    assert!(o.status.success(), "gran {args:?} failed ({:?}):\n{}", o.status.code(), text(&o.stderr));
    text(&o.stdout)
}

/// The last line of stdout as JSON (a command's result under --json).
fn result_json(stdout: &str) -> serde_json::Value {
    let line = stdout.lines().last().expect("some output");
    let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    assert_eq!(v["type"], "result", "{v}");
    v
}

/// Runs and expects exit code `code` with exactly one line on stderr; returns that line.
fn fails(args: &[&str], code: i32) -> String {
    let o = gran(args);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(code), "gran {args:?}: stderr:\n{err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "gran {args:?}: expected one line on stderr, got:\n{err}");
    lines[0].to_string()
}

/// Width and height from a PNG's IHDR, after checking the signature.
fn png_size(path: &Path) -> (u32, u32) {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&b[..8], b"\x89PNG\r\n\x1a\n", "{} is not a PNG", path.display());
    assert_eq!(&b[12..16], b"IHDR");
    (u32::from_be_bytes(b[16..20].try_into().unwrap()), u32::from_be_bytes(b[20..24].try_into().unwrap()))
}

/// The options of a tiny, fast model and run.
const TINY: [&str; 14] = [
    "--width-scale",
    "0.0625",
    "--z-dim",
    "8",
    "--hidden-dim",
    "8",
    "-T",
    "2",
    "--batch-size",
    "8",
    "--limit",
    "256",
    "--device",
    "cpu",
];

/// Each frame of a GIF: its size and delay in milliseconds.
fn gif_frames(path: &str) -> Vec<((u32, u32), u32)> {
    use image::AnimationDecoder;
    let file = BufReader::new(std::fs::File::open(path).unwrap());
    let frames = image::codecs::gif::GifDecoder::new(file).unwrap().into_frames().collect_frames().unwrap();
    frames
        .iter()
        .map(|f| (f.buffer().dimensions(), f.delay().numer_denom_ms().0 / f.delay().numer_denom_ms().1))
        .collect()
}

/// The grey levels of a GIF's first frame.
fn gif_first_frame_grey(path: &str) -> Vec<u8> {
    use image::AnimationDecoder;
    let file = BufReader::new(std::fs::File::open(path).unwrap());
    let frame = image::codecs::gif::GifDecoder::new(file).unwrap().into_frames().next().unwrap().unwrap();
    image::DynamicImage::ImageRgba8(frame.into_buffer()).to_luma8().into_raw()
}

/// The grey levels of a PNG.
fn png_grey(path: &str) -> Vec<u8> {
    image::open(path).unwrap().to_luma8().into_raw()
}

fn train_tiny(data: &str, out: &str, iterations: &str, extra: &[&str]) -> String {
    let mut args = vec!["--threads", "1", "train", "--data", data, "-o", out, "-n", iterations, "--seed", "5"];
    args.extend(TINY);
    args.extend(extra);
    ok(&args)
}

/// `gran pack`: a StyleGAN2-ADA zip (labels from its dataset.json) and MNIST IDX files become
/// .npy arrays that load as the sources do, with their labels beside them.
#[test]
fn pack_writes_npy_that_loads_as_its_source() {
    use std::io::Write;
    let dir = scratch("pack");
    let zip_path = dir.join("set.zip");
    let mut z = zip::ZipWriter::new(std::fs::File::create(&zip_path).unwrap());
    let opts = zip::write::SimpleFileOptions::default();
    let mut json = Vec::new();
    for i in 0..3u8 {
        let name = format!("00000/img{i:08}.png");
        let img = image::RgbImage::from_fn(6, 6, |x, y| image::Rgb([40 * i, x as u8 * 30, y as u8 * 30]));
        let mut png = std::io::Cursor::new(Vec::new());
        img.write_to(&mut png, image::ImageFormat::Png).unwrap();
        z.start_file(name.as_str(), opts).unwrap();
        z.write_all(png.get_ref()).unwrap();
        json.push(serde_json::json!([name, 5 - i]));
    }
    z.start_file("dataset.json", opts).unwrap();
    z.write_all(serde_json::json!({ "labels": json }).to_string().as_bytes()).unwrap();
    z.finish().unwrap();

    let npy = dir.join("set.npy");
    let r = result_json(&ok(&["pack", &zip_path.display().to_string(), "-o", &npy.display().to_string(), "--json"]));
    assert_eq!((r["count"].as_u64(), r["height"].as_u64(), r["channels"].as_u64()), (Some(3), Some(6), Some(3)));
    assert_eq!(r["labels_from"], "dataset.json");
    let packed = gran::data::load_npy(&npy).unwrap();
    let shape = gran::data::ImageShape { height: 6, width: 6, channels: 3, fit: gran::data::Fit::Stretch };
    let source = gran::data::load_image_source(&zip_path, shape, gran::data::FolderLabels::Auto).unwrap();
    assert!(packed.images().unwrap().equal(source.images().unwrap()));
    assert_eq!(packed.labels(), Some(&[5u8, 4, 3][..]));

    let mnist = dir.join("mnist.npy");
    ok(&["pack", &data_dir(), "-o", &mnist.display().to_string(), "--limit", "20", "--quiet"]);
    let packed = gran::data::load_npy(&mnist).unwrap();
    let idx = gran::data::load_idx(
        &Path::new(&data_dir()).join("train-images-idx3-ubyte.gz"),
        Some(&Path::new(&data_dir()).join("train-labels-idx1-ubyte.gz")),
    )
    .unwrap()
    .subset(0, 20)
    .unwrap();
    assert!(packed.images().unwrap().equal(idx.images().unwrap()) && packed.labels() == idx.labels());
    // A name without .npy is refused.
    let line = fails(&["pack", &data_dir(), "-o", &dir.join("x.bin").display().to_string()], 11);
    assert!(line.contains(".npy"), "{line}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn train_resume_sample_steps_gam_eval_info() {
    let dir = scratch("flow");
    let data = data_dir();
    let p = |name: &str| dir.join(name).display().to_string();
    let (a, b, straight) = (p("a.safetensors"), p("b.safetensors"), p("straight.safetensors"));

    // Train 6 steps: a progress line every 2 steps, then the result.
    let out = train_tiny(&data, &a, "6", &["--json", "--report-every", "2"]);
    let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let progress: Vec<&serde_json::Value> = lines.iter().filter(|v| v["type"] == "progress").collect();
    assert_eq!(progress.iter().map(|v| v["step"].as_u64().unwrap()).collect::<Vec<_>>(), [2, 4, 6]);
    for v in &progress {
        assert!(v["d_loss"].as_f64().unwrap().is_finite() && v["g_loss"].as_f64().unwrap() > 0.0, "{v}");
        assert!((0.0..=1.0).contains(&v["d_real"].as_f64().unwrap()), "{v}");
        assert_eq!(v["total_steps"], 6);
    }
    let r = result_json(&out);
    assert_eq!(
        (r["command"].as_str(), r["first_step"].as_u64(), r["step"].as_u64()),
        (Some("train"), Some(0), Some(6))
    );
    assert_eq!((r["config"]["drawing_steps"].as_u64(), r["config"]["height"].as_u64()), (Some(2), Some(28)));
    assert_eq!(r["images"], 256);

    // The checkpoint loads, in the library and in `gran info`.
    let m = gran::checkpoint::load(Path::new(&a), Some(gran::DeviceSpec::Cpu)).unwrap();
    assert_eq!((m.step(), m.config().drawing_steps, m.config().z_dim), (6, 2, 8));
    let info = result_json(&ok(&["info", &a, "--json"]));
    assert_eq!((info["kind"].as_str(), info["step"].as_u64()), (Some("checkpoint"), Some(6)));
    assert_eq!(info["config"]["width_scale"].as_f64(), Some(0.0625));
    assert!(
        info["parameters"]["generator"].as_u64().unwrap() > 0
            && info["parameters"]["discriminator"].as_u64().unwrap() > 0
    );
    let human = ok(&["info", &a]);
    assert!(human.contains("gran checkpoint") && human.contains("trained:     6 steps"), "{human}");
    // Trained with the default --ema-decay: an averaged generator; with 0, none.
    assert_eq!(info["averaged_generator"], true);
    assert!(human.contains("averaged generator: yes"), "{human}");
    let plain = p("plain.safetensors");
    train_tiny(&data, &plain, "2", &["--quiet", "--ema-decay", "0"]);
    assert_eq!(result_json(&ok(&["info", &plain, "--json"]))["averaged_generator"], false);
    fails(&["train", "--quiet", "--data", &data, "-o", &plain, "--ema-decay", "1"], 11);

    // Without --json, stderr names the settings the run resolved: R1 by image size (none for
    // 28x28 digits) unless given.
    let settings = |name: &str, extra: &[&str]| {
        let out = p(name);
        let mut args = vec!["--threads", "1", "train", "--data", &data, "-o", &out, "-n", "1"];
        args.extend(TINY);
        args.extend(extra);
        let o = gran(&args);
        assert!(o.status.success(), "{}", text(&o.stderr));
        text(&o.stderr).lines().find(|l| l.starts_with("training: ")).map(str::to_string).unwrap_or_default()
    };
    let line = settings("settings_default.safetensors", &[]);
    assert!(
        line.starts_with("training: lr G 0.0008, D 0.0032, batch ")
            && line.ends_with("augmentation adaptive (target 0.6, p at least 0.3); R1 off (by image size, 28x28)"),
        "{line}"
    );
    let line = settings(
        "settings_given.safetensors",
        &["--augment", "fixed", "--augment-p", "0.3", "--r1-gamma", "5", "--lr-d", "0.001"],
    );
    assert!(
        line.contains(", D 0.001, ") && line.ends_with("augmentation fixed p 0.3; R1 gamma 5 every 4 steps"),
        "{line}"
    );

    // --resume-if-exists counts --iterations from step 0: the file at step 6 trains 4 more to
    // reach 10 (below), and a model other than the file's is refused with the file untouched.
    let again = p("again.safetensors");
    std::fs::copy(&a, &again).unwrap();
    let r = result_json(&train_tiny(&data, &again, "6", &["--json", "--resume-if-exists"]));
    assert_eq!((r["step"].as_u64(), r["trained"].as_bool()), (Some(6), Some(false)), "{r}");
    let mut other = vec!["--threads", "1", "train", "--data", &data, "-o", &again, "-n", "10", "--seed", "5"];
    other.extend(TINY);
    other.extend(["-T", "3", "--resume-if-exists", "--quiet"]);
    let line = fails(&other, 11);
    assert!(line.contains("holds another model") && line.contains("T=2") && line.contains("T=3"), "{line}");
    let r = result_json(&train_tiny(&data, &again, "10", &["--json", "--resume-if-exists"]));
    assert_eq!((r["first_step"].as_u64(), r["step"].as_u64()), (Some(6), Some(10)));

    // Resume for 4 more steps: the same checkpoint, byte for byte, as 10 steps in one go.
    std::fs::copy(&a, &b).unwrap();
    let r = result_json(&ok(&[
        "--threads",
        "1",
        "train",
        "--data",
        &data,
        "--limit",
        "256",
        "--batch-size",
        "8",
        "--resume",
        &b,
        "-n",
        "4",
        "--json",
    ]));
    assert_eq!((r["first_step"].as_u64(), r["step"].as_u64()), (Some(6), Some(10)));
    assert_eq!(r["checkpoint"].as_str(), Some(b.as_str()), "--resume writes back to its file by default");
    train_tiny(&data, &straight, "10", &["--quiet"]);
    assert!(std::fs::read(&b).unwrap() == std::fs::read(&straight).unwrap(), "resumed != uninterrupted");
    assert!(std::fs::read(&again).unwrap() == std::fs::read(&straight).unwrap(), "--resume-if-exists != uninterrupted");

    // Samples: an 10-image grid of 5 columns (28-pixel tiles, 2-pixel borders), and one PNG each.
    let grid = p("grid.png");
    let r = result_json(&ok(&[
        "sample",
        &b,
        "-o",
        &grid,
        "-n",
        "10",
        "--columns",
        "5",
        "--seed",
        "3",
        "--device",
        "cpu",
        "--json",
    ]));
    assert_eq!((r["count"].as_u64(), r["columns"].as_u64()), (Some(10), Some(5)));
    assert_eq!(png_size(Path::new(&grid)), (5 * 28 + 4 * 2, 2 * 28 + 2));
    let each = dir.join("each");
    ok(&["sample", &b, "--out-dir", each.to_str().unwrap(), "-n", "3", "--device", "cpu"]);
    let mut names: Vec<String> =
        std::fs::read_dir(&each).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["sample_00000.png", "sample_00001.png", "sample_00002.png"]);
    assert_eq!(png_size(&each.join("sample_00001.png")), (28, 28));
    // The default grid is square: 9 images, 3 per row.
    let sq = p("sub/dir/square.png");
    let said = ok(&["sample", &b, "-o", &sq, "-n", "9", "--device", "cpu"]);
    assert!(said.contains("square.png"), "{said}");
    assert_eq!(png_size(Path::new(&sq)), (3 * 28 + 4, 3 * 28 + 4));

    // The averaged generator (the default) against the raw one (--raw): other pictures.
    let (avg_png, raw_png) = (p("avg.png"), p("raw.png"));
    ok(&["sample", &b, "-o", &avg_png, "-n", "4", "--device", "cpu"]);
    ok(&["sample", &b, "-o", &raw_png, "-n", "4", "--device", "cpu", "--raw"]);
    assert!(std::fs::read(&avg_png).unwrap() != std::fs::read(&raw_png).unwrap());

    // Export: smaller files that draw the same pictures, and refuse what needs a discriminator.
    let (exp32, exp16) = (p("g32.safetensors"), p("g16.safetensors"));
    let r = result_json(&ok(&["export", &b, "-o", &exp32, "--json"]));
    assert_eq!((r["generator"].as_str(), r["storage"].as_str()), (Some("averaged"), Some("fp32")));
    assert!(r["model_bytes"].as_u64().unwrap() >= 3 * r["bytes"].as_u64().unwrap(), "{r}");
    let said = ok(&["export", &b, "-o", &exp16, "--storage", "bf16"]);
    assert!(said.contains("bf16 storage"), "{said}");
    assert!(std::fs::metadata(&exp16).unwrap().len() * 6 <= std::fs::metadata(&b).unwrap().len());
    let from_export = p("from_export.png");
    ok(&["sample", &exp32, "-o", &from_export, "-n", "4", "--device", "cpu"]);
    assert!(std::fs::read(&from_export).unwrap() == std::fs::read(&avg_png).unwrap());
    let info = result_json(&ok(&["info", &exp16, "--json"]));
    assert_eq!((info["kind"].as_str(), info["parameters"]["discriminator"].as_u64()), (Some("export"), Some(0)));
    let line = fails(&["gam", "--quiet", &exp32, &b, "--data", &data, "--device", "cpu"], 11);
    assert!(line.contains("exported for inference"), "{line}");

    // Steps: 4 rows of images, T = 2 columns.
    let steps = p("steps.png");
    let r = result_json(&ok(&["steps", &b, "-o", &steps, "-n", "4", "--device", "cpu", "--json"]));
    assert_eq!(r["drawing_steps"], 2);
    assert_eq!(png_size(Path::new(&steps)), (2 * 28 + 2, 4 * 28 + 3 * 2));
    // The drawing as a GIF alone: T = 2 frames of a 2 x 2 grid, the last held; no PNG.
    let anim = p("steps.gif");
    let r =
        result_json(&ok(&["steps", &b, "--animate", &anim, "-n", "4", "--delay", "300", "--device", "cpu", "--json"]));
    assert_eq!(r["files"], serde_json::json!([anim]));
    assert_eq!(gif_frames(&anim), vec![((2 * 28 + 2, 2 * 28 + 2), 300), ((2 * 28 + 2, 2 * 28 + 2), 2000)]);
    // A latent walk from seed 0 to seed 1 and back: 5 + 3 frames; its first frame is `sample`'s.
    let walk = p("walk.gif");
    let r = result_json(&ok(&[
        "walk", &b, "-o", &walk, "--frames", "5", "--bounce", "-n", "4", "--device", "cpu", "--json",
    ]));
    assert_eq!((r["frames"].as_u64(), r["from_seed"].as_u64(), r["to_seed"].as_u64()), (Some(8), Some(0), Some(1)));
    let frames = gif_frames(&walk);
    assert_eq!(frames.len(), 8);
    assert!(frames.iter().all(|&(size, ms)| size == (2 * 28 + 2, 2 * 28 + 2) && ms == 80), "{frames:?}");
    let first = p("walk_first.png");
    ok(&["sample", &b, "-o", &first, "-n", "4", "--seed", "0", "--device", "cpu"]);
    assert_eq!(gif_first_frame_grey(&walk), png_grey(&first));
    let line = fails(&["walk", &b, "--frames", "1"], 2);
    assert!(line.contains("--frames"), "{line}");

    // GAM on 50 held-out digits.
    let r = result_json(&ok(&[
        "gam",
        &a,
        &b,
        "--data",
        &data,
        "--limit",
        "50",
        "--samples",
        "20",
        "--device",
        "cpu",
        "--json",
    ]));
    assert_eq!((r["test_count"].as_u64(), r["sample_count"].as_u64()), (Some(50), Some(20)));
    assert_eq!((r["step_a"].as_u64(), r["step_b"].as_u64()), (Some(6), Some(10)));
    for k in ["test_error_a", "test_error_b", "sample_error_a", "sample_error_b"] {
        assert!((0.0..=1.0).contains(&r[k].as_f64().unwrap()), "{k}: {r}");
    }
    assert!(["a_wins", "b_wins", "tie", "undecided"].contains(&r["verdict"].as_str().unwrap()), "{r}");
    // The accuracy form, from the same four error rates.
    let acc = &r["accuracy_form"];
    let want = (1.0 - r["sample_error_a"].as_f64().unwrap()) / (1.0 - r["sample_error_b"].as_f64().unwrap());
    assert!((acc["r_sample"].as_f64().unwrap() - want).abs() < 1e-9, "{r}");
    assert!(["A ranks first", "B ranks first", "even"].contains(&acc["ranking"].as_str().unwrap()), "{r}");
    let human = ok(&["gam", &a, &a, "--data", &data, "--limit", "50", "--samples", "20", "--device", "cpu"]);
    assert!(human.contains("r_test   = 1.000") && human.contains("verdict: tie"), "a model against itself:\n{human}");
    assert!(human.contains("accuracy form (the authors' battle.py): r_test 1.000, r_sample 1.000: even"), "{human}");

    // Eval: an evaluator trained one epoch on 300 digits scores the model's samples.
    let r = result_json(&ok(&[
        "eval",
        &a,
        &b,
        "--data",
        &data,
        "--limit",
        "300",
        "--samples",
        "40",
        "--evaluator-epochs",
        "1",
        "--device",
        "cpu",
        "--json",
    ]));
    assert_eq!(r["classes"], 10);
    assert!((0.0..=1.0).contains(&r["evaluator_accuracy"].as_f64().unwrap()), "{r}");
    let models = r["models"].as_array().unwrap();
    assert_eq!(models.len(), 2);
    for q in models {
        assert_eq!(q["count"], 40);
        assert!(q["frechet_distance"].as_f64().unwrap() >= 0.0, "{q}");
        let cs = q["classifier_score"].as_f64().unwrap();
        assert!((1.0 - 1e-6..=10.0 + 1e-6).contains(&cs), "{q}");
        let shares: f64 = q["class_shares"].as_array().unwrap().iter().map(|s| s.as_f64().unwrap()).sum();
        assert!((shares - 1.0).abs() < 1e-9, "{q}");
        assert!(q["nearest_train_distance"].as_f64().unwrap() > 0.0, "{q}");
    }

    // Info on data: the folder's two splits, and one IDX file.
    let r = result_json(&ok(&["info", &data, "--json"]));
    assert_eq!(r["kind"], "idx");
    let sets = r["sets"].as_array().unwrap();
    assert_eq!(sets.len(), 2);
    assert_eq!((sets[0]["split"].as_str(), sets[0]["count"].as_u64()), (Some("training"), Some(9000)));
    assert_eq!((sets[1]["split"].as_str(), sets[1]["count"].as_u64()), (Some("held-out"), Some(1000)));
    assert_eq!((sets[1]["labelled"].as_bool(), sets[1]["classes"].as_u64()), (Some(true), Some(10)));
    let file = format!("{data}/t10k-images-idx3-ubyte.gz");
    let r = result_json(&ok(&["info", &file, "--json"]));
    assert_eq!((r["sets"][0]["count"].as_u64(), r["sets"][0]["height"].as_u64()), (Some(1000), Some(28)));

    // An image folder: train on the PNGs written above (resized to 28x28 grey).
    let folder = p("folder.safetensors");
    let r = result_json(&ok(&[
        "train",
        "--data",
        each.to_str().unwrap(),
        "--image-size",
        "28",
        "--channels",
        "1",
        "-o",
        &folder,
        "-n",
        "1",
        "--batch-size",
        "2",
        "--width-scale",
        "0.0625",
        "--device",
        "cpu",
        "--json",
    ]));
    assert_eq!((r["images"].as_u64(), r["step"].as_u64()), (Some(3), Some(1)));

    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_arguments_and_files_give_one_line_and_their_exit_code() {
    let dir = scratch("bad");
    let data = data_dir();
    let p = |name: &str| dir.join(name).display().to_string();

    // Command-line errors: 2, one line that names the problem and the help to read.
    let line = fails(&["train", "--iterations", "many"], 2);
    assert!(line.contains("'many'") && line.contains("gran train --help"), "{line}");
    let line = fails(&["frobnicate"], 2);
    assert!(line.contains("frobnicate"), "{line}");
    let line = fails(&["train", "--resume", "x.safetensors", "--drawing-steps", "5"], 2);
    assert!(line.contains("--drawing-steps") && line.contains("--resume"), "{line}");
    fails(&["sample"], 2); // the model is required
    fails(&["sample", "m.safetensors", "--count", "0"], 2);
    fails(&["sample", "m.safetensors", "--device", "tpu"], 2);

    // Missing files: 14.
    let line = fails(&["sample", &p("missing.safetensors")], 14);
    assert!(line.starts_with("gran sample: ") && line.contains("missing.safetensors"), "{line}");
    fails(&["train", "--quiet", "--data", &p("no-such-folder")], 14);
    fails(&["info", &p("nothing-here")], 14);

    // Files that are not what they should be: 15.
    let junk = p("junk.safetensors");
    std::fs::write(&junk, "this is not a checkpoint\n").unwrap();
    let line = fails(&["sample", &junk], 15);
    assert!(line.contains("junk.safetensors") && line.contains("not a valid gran checkpoint"), "{line}");
    let line = fails(&["info", &junk], 15);
    assert!(line.contains("neither a gran checkpoint nor data"), "{line}");
    // A checkpoint cut short.
    let good = p("good.safetensors");
    train_tiny(&data, &good, "1", &["--quiet"]);
    let bytes = std::fs::read(&good).unwrap();
    let cut = p("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() - 100]).unwrap();
    fails(&["sample", &cut, "--device", "cpu"], 15);
    fails(&["info", &cut], 15);
    // --json: the error also as a JSON object on stdout.
    let o = gran(&["info", &junk, "--json"]);
    assert_eq!(o.status.code(), Some(15));
    let v: serde_json::Value = serde_json::from_str(text(&o.stdout).trim()).unwrap();
    assert_eq!(
        (v["type"].as_str(), v["kind"].as_str(), v["exit_code"].as_i64()),
        (Some("error"), Some("format"), Some(15))
    );

    // Values the library refuses: 11.
    let mut args = vec!["train", "--quiet", "--data", data.as_str(), "-o", "x.safetensors", "--limit", "10"];
    args.extend(["--batch-size", "64"]);
    let line = fails(&args, 11);
    assert!(line.contains("batch_size 64") && line.contains("10 images"), "{line}");
    let line = fails(&["train", "--quiet", "--data", &data, "--width-scale", "9"], 11);
    assert!(line.contains("width_scale"), "{line}");

    // Help and version: exit 0, with the exit codes documented.
    let help = ok(&["--help"]);
    for word in ["train", "sample", "steps", "gam", "eval", "info", "Exit status", "130"] {
        assert!(help.contains(word), "--help lacks {word}:\n{help}");
    }
    assert!(ok(&["train", "--help"]).contains("--resume"));
    assert!(ok(&["--version"]).starts_with("gran "));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ctrl_c_stops_training_at_a_step_boundary_and_writes_the_checkpoint() {
    let dir = scratch("sigint");
    let ckpt = dir.join("run.safetensors");
    let data = data_dir();
    let mut args = vec!["--threads", "1", "train", "--data", &data, "-o", ckpt.to_str().unwrap()];
    args.extend(["-n", "1000000", "--report-every", "1"]);
    args.extend(TINY);
    let mut child = gran_command(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap()).lines();
    // stderr is a pipe: plain progress lines. Wait for the first one.
    let mut seen = Vec::new();
    for line in err.by_ref() {
        let line = line.unwrap();
        seen.push(line.clone());
        if line.starts_with("step ") {
            break;
        }
    }
    assert!(seen.last().is_some_and(|l| l.starts_with("step 1/1000000")), "no progress line: {seen:?}");
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) }, 0);
    let rest: Vec<String> = err.map(|l| l.unwrap()).collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "stderr after SIGINT: {rest:?}");
    let last = rest.last().expect("a last line");
    assert!(
        last.starts_with("gran train: stopped by an interrupt (Ctrl-C or SIGTERM) at step ")
            && last.contains("--resume"),
        "{last}"
    );
    // The checkpoint holds the last completed step and loads.
    let m = gran::checkpoint::load(&ckpt, Some(gran::DeviceSpec::Cpu)).unwrap();
    assert!(m.step() > 0 && m.step() < 1_000_000, "step {}", m.step());
    assert!(last.contains(&format!("at step {};", m.step())), "{last} vs step {}", m.step());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A reader that closes its end of the pipe (`gran info ... | head -1`) ends the tool quietly,
/// as Unix tools end: by SIGPIPE (or, had it written everything first, success), never a panic
/// or a line on stderr.
#[test]
fn a_closed_pipe_ends_the_tool_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let mut child = gran_command(&["info", &data_dir()])
        .env("RUST_BACKTRACE", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The read end closes before the tool (still loading libtorch) writes its first line.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() || out.status.signal() == Some(libc::SIGPIPE),
        "ended with {:?}: {}",
        out.status,
        text(&out.stderr)
    );
    assert_eq!(text(&out.stderr), "", "the tool wrote to stderr");
}

/// A class-conditional model from the command line: `train --conditional` takes the digits'
/// labels (10 classes), `sample --per-class` draws one row per class, `sample --class K` the
/// images of one class (row K of that grid), and a class past the model's is refused.
#[test]
fn a_conditional_model_samples_by_class() {
    let dir = scratch("conditional");
    let model = dir.join("c.gran").display().to_string();
    train_tiny(&data_dir(), &model, "2", &["--conditional"]);
    let grid = dir.join("per_class.png").display().to_string();
    let out = ok(&["--json", "sample", &model, "--per-class", "4", "-o", &grid]);
    let v = result_json(&out);
    assert_eq!((v["classes"].as_u64(), v["count"].as_u64(), v["columns"].as_u64()), (Some(10), Some(40), Some(4)));
    // 10 rows of 4 images of 28x28, 2 pixels apart.
    assert_eq!(png_size(Path::new(&grid)), (4 * 30 - 2, 10 * 30 - 2));
    let seven = dir.join("seven.png").display().to_string();
    ok(&["sample", &model, "--class", "7", "-n", "4", "--columns", "4", "-o", &seven]);
    assert_eq!(png_size(Path::new(&seven)), (4 * 30 - 2, 28));
    // Row 7 of the per-class grid is the class-7 sample (to a grey level: other batch sizes).
    let (all, row) = (png_grey(&grid), png_grey(&seven));
    let width = (4 * 30 - 2) as usize;
    let band = &all[7 * 30 * width..(7 * 30 + 28) * width];
    assert!(band.iter().zip(&row).all(|(a, b)| a.abs_diff(*b) <= 1), "row 7 differs from --class 7");
    let line = fails(&["sample", &model, "--class", "10", "-o", &seven], 11);
    assert!(line.contains("class 10 is out of range"), "{line}");
    assert!(ok(&["info", &model]).contains("classes:     10 (class-conditional"));
    assert_eq!(result_json(&ok(&["--json", "info", &model]))["config"]["classes"].as_u64(), Some(10));
    // An unconditional model has no classes to draw.
    let plain = dir.join("p.gran").display().to_string();
    train_tiny(&data_dir(), &plain, "1", &[]);
    let line = fails(&["sample", &plain, "--per-class", "-o", &grid], 11);
    assert!(line.contains("class-conditional"), "{line}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// `--upsampling resize`: the model it trains says so (`info`, text and JSON), samples, and is
/// resumed as itself; an unknown kind is a command-line error.
#[test]
fn a_resizing_generator_from_the_command_line() {
    let dir = scratch("resize");
    let model = dir.join("r.gran").display().to_string();
    train_tiny(&data_dir(), &model, "2", &["--quiet", "--upsampling", "resize"]);
    assert!(ok(&["info", &model]).contains("generator upsampling resize"));
    assert_eq!(result_json(&ok(&["--json", "info", &model]))["config"]["upsampling"].as_str(), Some("resize"));
    let grid = dir.join("g.png").display().to_string();
    ok(&["sample", &model, "-n", "4", "--columns", "4", "-o", &grid]);
    assert_eq!(png_size(Path::new(&grid)), (4 * 30 - 2, 28));
    // --resume-if-exists with another kind is refused: the file holds another model.
    let data = data_dir();
    let mut args: Vec<&str> = Vec::new();
    args.extend(["--threads", "1", "train", "--quiet", "--data", &data, "-o", &model, "-n", "3", "--seed", "5"]);
    args.extend(TINY);
    args.push("--resume-if-exists");
    let line = fails(&args, 11);
    assert!(line.contains("upsampling resize") && line.contains("upsampling transposed"), "{line}");
    args.extend(["--upsampling", "resize"]);
    ok(&args);
    assert_eq!(result_json(&ok(&["--json", "info", &model]))["step"].as_u64(), Some(3));
    let line = fails(&["train", "--upsampling", "bilinear"], 2);
    assert!(line.contains("bilinear"), "{line}");
    std::fs::remove_dir_all(dir).unwrap();
}
