//! Hostile input to libgran_runtime: damaged, truncated and forged model files, and C calls with
//! NULL pointers, huge counts, misaligned or non-finite arguments. Every outcome must be a
//! status (OK, FORMAT or IO for a file; the documented one for a call), never a signal, an
//! abort, a hang or unbounded memory.
//!
//! Every case runs in a child process (this program run again with `--case NAME`), under a
//! time limit, so that an abort, a crash or a hang fails that case instead of killing the
//! runner. The fuzz case mutates the three test models (runtime/tests/data) with a fixed seed;
//! `GRAN_FUZZ_TRIES=N` sets the mutants per file (default 1500), `GRAN_FUZZ_SEED` the seed.
//!
//! Runs without the test harness (`harness = false`): one line per case, then
//! "hostile: N passed, N failed". `cargo test --release -p gran-runtime --test hostile -- NAME`
//! runs the cases whose name contains NAME.

use gran_common::abi::*;
use gran_common::checksum::tensor_checksum;
use gran_runtime::ffi::*;
use gran_runtime::{Classes, Latents, Model, PixelFormat};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::ffi::{c_char, c_void, CStr, CString};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

#[path = "../../tests/support/child.rs"]
mod child;
mod files;

use files::{header, parts, raw_file, synthetic_export, Rng, Synthetic, Tensor};

/// A case that runs longer than this is a hang.
const HANG_LIMIT: Duration = Duration::from_secs(90);

type Case = fn() -> Result<String, String>;

const CASES: &[(&str, Case)] = &[
    ("test_files_load", test_files_load),
    ("truncations", truncations),
    ("header_lengths", header_lengths),
    ("bad_json", bad_json),
    ("bad_tables", bad_tables),
    ("checksums", checksums),
    ("bad_values", bad_values),
    ("bad_config", bad_config),
    ("checkpoint_tensor_set_is_exact", checkpoint_tensor_set_is_exact),
    ("other_configurations_draw", other_configurations_draw),
    ("huge_claims", huge_claims),
    ("files_through_c", files_through_c),
    ("null_pointers", null_pointers),
    ("huge_counts", huge_counts),
    ("misaligned_and_non_finite", misaligned_and_non_finite),
    ("handles_and_settings", handles_and_settings),
    ("fuzz", fuzz),
];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--case") {
        let name = args.get(i + 1).map(String::as_str).unwrap_or("");
        child::report(name, CASES.iter().find(|(n, _)| *n == name).map(|c| c.1()));
    }
    // The harness's own filter: the first argument that is not an option.
    let filter = args.iter().skip(1).find(|a| !a.starts_with('-')).cloned().unwrap_or_default();
    let (mut passed, mut failed) = (0, 0);
    let started = Instant::now();
    for (name, _) in CASES.iter().filter(|(n, _)| n.contains(&filter)) {
        match in_child(name) {
            Ok(detail) => {
                passed += 1;
                println!("case {name} ... ok: {detail}");
            }
            Err(why) => {
                failed += 1;
                println!("case {name} ... FAILED: {why}");
            }
        }
    }
    println!("hostile: {passed} passed, {failed} failed ({:.1} s)", started.elapsed().as_secs_f64());
    std::process::exit(if failed == 0 { 0 } else { 1 });
}

/// Runs case `name` in a child process (tests/support/child.rs), under [`HANG_LIMIT`].
fn in_child(name: &str) -> Result<String, String> {
    child::in_child(name, &[], HANG_LIMIT)
}

// ---------------------------------------------------------------------------------------------
// Helpers

fn ensure(ok: bool, why: impl FnOnce() -> String) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(why())
    }
}

fn last_error() -> String {
    let mut buf = [0 as c_char; 1024];
    // SAFETY: gran_last_error writes at most buf.len() bytes, NUL-terminated.
    unsafe { gran_last_error(buf.as_mut_ptr(), buf.len()) };
    // SAFETY: NUL-terminated by gran_last_error (or still all zeros).
    unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy().into_owned()
}

fn name(s: GranStatus) -> String {
    // SAFETY: gran_status_string returns a static NUL-terminated string.
    unsafe { CStr::from_ptr(gran_status_string(s)) }.to_string_lossy().into_owned()
}

/// `got` must be `want`; a failure must also leave a message.
fn expect(got: GranStatus, want: GranStatus, what: &str) -> Result<(), String> {
    let msg = last_error();
    ensure(got == want, || format!("{what}: {} ({msg}), expected {}", name(got), name(want)))?;
    ensure(want == GRAN_STATUS_OK || !msg.is_empty(), || format!("{what}: {} without a message", name(got)))
}

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

const FILES: [&str; 3] = ["tiny_t3_bf16.safetensors", "tiny_t3_fp32.safetensors", "tiny_t3_checkpoint.safetensors"];

fn test_file(file: &str) -> Vec<u8> {
    std::fs::read(data_dir().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// A folder of this process for temporary files (removed by the case when it passes).
fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gran-runtime-hostile-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch folder");
    dir
}

/// What loading gave: the status, and the message of a failure.
fn status_of(r: &gran_runtime::Result<Model>) -> (GranStatus, String) {
    match r {
        Ok(_) => (GRAN_STATUS_OK, String::new()),
        Err(e) => (e.status, e.message.clone()),
    }
}

/// Loads `bytes` (from memory) and expects FORMAT.
fn expect_format(bytes: &[u8], what: &str) -> Result<String, String> {
    match Model::from_bytes(bytes) {
        Ok(_) => Err(format!("{what}: loaded, expected FORMAT")),
        Err(e) if e.status == GRAN_STATUS_FORMAT => Ok(e.message),
        Err(e) => Err(format!("{what}: {} ({}), expected FORMAT", name(e.status), e.message)),
    }
}

/// Draws `count` images of `m` as floats and checks them: finite, in [0, 1].
fn draw_checked(m: &Model, count: usize, what: &str) -> Result<(), String> {
    let bytes = m.pixel_bytes(PixelFormat::F32Chw, count, true).map_err(|e| format!("{what}: {}", e.message))?;
    let mut out = vec![0u8; bytes];
    m.draw_pixels(Latents::Seed(7), Classes::Drawn, count, true, PixelFormat::F32Chw, &mut out)
        .map_err(|e| format!("{what}: drawing failed: {} {}", name(e.status), e.message))?;
    let ok = out.chunks_exact(4).all(|c| (0.0..=1.0).contains(&f32::from_ne_bytes([c[0], c[1], c[2], c[3]])));
    ensure(ok, || format!("{what}: a drawn value outside [0, 1]"))
}

/// Rewrites the header of `bytes` with `edit`, keeping the data, with the checksum field set to
/// what the loader computes from the edited table (every entry whose range is within the data,
/// in name order), so that an edit is judged on its own and not stopped by the checksum.
fn edit_header(bytes: &[u8], edit: impl FnOnce(&mut Map<String, Value>)) -> Vec<u8> {
    edit_header_with(bytes, true, edit)
}

/// [`edit_header`], with the checksum field left as `edit` leaves it unless `fresh_checksum`.
fn edit_header_with(bytes: &[u8], fresh_checksum: bool, edit: impl FnOnce(&mut Map<String, Value>)) -> Vec<u8> {
    let (mut h, start) = header(bytes);
    let obj = h.as_object_mut().unwrap();
    edit(obj);
    let data = &bytes[start..];
    let mut entries: Vec<(&String, &[u8])> = Vec::new();
    for (k, v) in obj.iter() {
        let range = v.get("data_offsets").and_then(|o| o.as_array()).and_then(|o| {
            let (a, b) = (o.first()?.as_u64()? as usize, o.get(1)?.as_u64()? as usize);
            (a <= b && b <= data.len()).then_some((a, b))
        });
        if let (false, Some((a, b))) = (k == "__metadata__", range) {
            entries.push((k, &data[a..b]));
        }
    }
    let sum = tensor_checksum(entries.iter().map(|(k, b)| (k.as_str(), *b)));
    if let (true, Some(Value::Object(m))) = (fresh_checksum, obj.get_mut("__metadata__")) {
        if m.contains_key("checksum") {
            m.insert("checksum".into(), Value::String(format!("{sum:016x}")));
        }
    }
    raw_file(&serde_json::to_vec(&h).unwrap(), data)
}

/// A C string of a path.
fn c_path(p: &Path) -> CString {
    CString::new(p.to_str().expect("a UTF-8 path")).unwrap()
}

/// gran_model_load on `path`: the status and the handle.
fn c_load(path: &Path) -> (GranStatus, GranModel) {
    let mut m: GranModel = 0;
    // SAFETY: a NUL-terminated path and a valid out pointer.
    let s = unsafe { gran_model_load(c_path(path).as_ptr(), std::ptr::null(), &mut m) };
    (s, m)
}

fn c_model(file: &str) -> Result<GranModel, String> {
    let (s, m) = c_load(&data_dir().join(file));
    expect(s, GRAN_STATUS_OK, file)?;
    Ok(m)
}

/// The peak resident size of this process so far, in KiB, after resetting it (Linux).
fn reset_peak() {
    std::fs::write("/proc/self/clear_refs", "5").ok();
}

fn peak_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("VmHWM:")?.split_whitespace().next()?.parse().ok()).unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// Files

/// The test files load, as files and from memory, with the configuration they state, and draw.
fn test_files_load() -> Result<String, String> {
    for f in FILES {
        let bytes = test_file(f);
        let m = Model::from_bytes(&bytes).map_err(|e| format!("{f}: {}", e.message))?;
        let c = m.config();
        ensure((c.height, c.width, c.channels, c.steps, c.z_dim) == (28, 28, 1, 3, 16), || format!("{f}: {c:?}"))?;
        ensure(m.step() == 60, || format!("{f}: step {}", m.step()))?;
        ensure(m.has_averaged() == f.contains("checkpoint"), || format!("{f}: has_averaged"))?;
        draw_checked(&m, 3, f)?;
        Model::load(&data_dir().join(f)).map_err(|e| format!("{f} as a file: {}", e.message))?;
    }
    Ok("3 files load and draw".into())
}

/// Every length of the bf16 export short of its whole (and lengths of every class of the
/// others: inside the length word, inside the header, at its end, inside the data, one byte
/// short) is FORMAT.
fn truncations() -> Result<String, String> {
    let mut tried = 0;
    for f in FILES {
        let bytes = test_file(f);
        let (_, start) = header(&bytes);
        let lens: Vec<usize> = if f.contains("bf16") {
            (0..bytes.len()).collect()
        } else {
            let mut l: Vec<usize> = (0..=start + 64).collect();
            l.extend((start + 64..bytes.len()).step_by(97));
            l.extend(bytes.len() - 64..bytes.len());
            l
        };
        for n in lens {
            tried += 1;
            expect_format(&bytes[..n], &format!("{f} cut to {n} bytes"))?;
        }
        // And one byte more than the table implies.
        let mut longer = bytes.clone();
        longer.push(0);
        expect_format(&longer, &format!("{f} with a byte appended"))?;
    }
    Ok(format!("{tried} truncated copies: FORMAT"))
}

/// Header lengths huge, zero, 1, past the file, exactly the rest of the file, and 2^63.
fn header_lengths() -> Result<String, String> {
    let bytes = test_file(FILES[0]);
    let rest = bytes.len() as u64 - 8;
    let claims = [
        0,
        1,
        2,
        rest,
        rest + 1,
        rest + 8,
        16 << 20,
        (16 << 20) + 1,
        u32::MAX as u64,
        1 << 32,
        1 << 63,
        (1 << 63) - 1,
        u64::MAX,
        u64::MAX - 7,
    ];
    for n in claims {
        let mut b = bytes.clone();
        b[..8].copy_from_slice(&n.to_le_bytes());
        expect_format(&b, &format!("header length {n}"))?;
    }
    // A header of 16 MiB + 1 byte that is really there: refused before it is read.
    let mut big = ((16u64 << 20) + 1).to_le_bytes().to_vec();
    big.resize(8 + (16 << 20) + 1 + 16, b' ');
    expect_format(&big, "a 16 MiB + 1 header")?;
    // Only the length word.
    expect_format(&0u64.to_le_bytes(), "only a zero length word")?;
    Ok(format!("{} header lengths: FORMAT", claims.len() + 2))
}

/// Headers that are not the JSON of a gran file.
fn bad_json() -> Result<String, String> {
    let bytes = test_file(FILES[0]);
    let (h, start) = header(&bytes);
    let data = &bytes[start..];
    let json = serde_json::to_vec(&h).unwrap();
    let deep = "[".repeat(100_000);
    let mut texts: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"{".to_vec(),
        b"}".to_vec(),
        b"null".to_vec(),
        b"[]".to_vec(),
        b"{}".to_vec(),
        b"\"__metadata__\"".to_vec(),
        b"{\"__metadata__\": {}}".to_vec(),
        b"{\"__metadata__\": []}".to_vec(),
        b"{\"__metadata__\": null}".to_vec(),
        b"{\"__metadata__\": {\"format\": 1}}".to_vec(),
        b"{\"__metadata__\": {\"format\": \"gran-generator\"}}".to_vec(),
        b"{\"a\": 1}".to_vec(),
        deep.into_bytes(),
        "{\"__metadata__\": {\"format\": \"gran-generator\", \"x\": \"\u{fffd}\"}}".as_bytes().to_vec(),
        vec![0xff, 0xfe, 0x7b, 0x7d],
        vec![0u8; 64],
    ];
    // The real header cut short, with a byte changed, invalid UTF-8 inside a string, trailing
    // garbage, and a NUL.
    texts.push(json[..json.len() / 2].to_vec());
    texts.push(json[..json.len() - 1].to_vec());
    let mut t = json.clone();
    t[json.len() / 3] = b'"';
    texts.push(t);
    let mut t = json.clone();
    let at = json.windows(9).position(|w| w == b"gran-gene").unwrap();
    t[at] = 0xc3;
    texts.push(t);
    let mut t = json.clone();
    t.extend_from_slice(b" x");
    texts.push(t);
    let mut t = json.clone();
    t.push(0);
    texts.push(t);
    for (i, text) in texts.iter().enumerate() {
        expect_format(&raw_file(text, data), &format!("bad header {i}"))?;
    }
    // Tensor entries of the wrong kinds: missing, extra or mistyped fields.
    let any = h.as_object().unwrap().keys().find(|k| *k != "__metadata__").unwrap().clone();
    let entries = [
        json!(null),
        json!(1),
        json!("x"),
        json!([]),
        json!({}),
        json!({"dtype": "BF16", "shape": [784]}),
        json!({"dtype": "BF16", "shape": [784], "data_offsets": [0, 1568], "extra": 1}),
        json!({"dtype": 16, "shape": [784], "data_offsets": [0, 1568]}),
        json!({"dtype": "BF16", "shape": 784, "data_offsets": [0, 1568]}),
        json!({"dtype": "BF16", "shape": [-784], "data_offsets": [0, 1568]}),
        json!({"dtype": "BF16", "shape": [784.0], "data_offsets": [0, 1568]}),
        json!({"dtype": "BF16", "shape": ["784"], "data_offsets": [0, 1568]}),
        json!({"dtype": "BF16", "shape": [784], "data_offsets": [0]}),
        json!({"dtype": "BF16", "shape": [784], "data_offsets": [0, 1568, 3136]}),
        json!({"dtype": "BF16", "shape": [784], "data_offsets": [-1, 1567]}),
        json!({"dtype": "BF16", "shape": [784], "data_offsets": [0.0, 1568.0]}),
        json!({"dtype": "BF16", "shape": [784], "data_offsets": "0-1568"}),
        json!({"dtype": "BF16", "shape": [784], "data_offsets": [0, 1e300]}),
        json!({"dtype": "BF16", "shape": [1e300], "data_offsets": [0, 1568]}),
    ];
    for (i, e) in entries.iter().enumerate() {
        let b = edit_header(&bytes, |o| {
            o.insert(any.clone(), e.clone());
        });
        expect_format(&b, &format!("tensor entry {i}"))?;
    }
    // Duplicate keys in the JSON text (a second __metadata__ or a tensor twice).
    let text = String::from_utf8(json.clone()).unwrap();
    // serde_json keeps the last of duplicate keys: OK (the real metadata last) or FORMAT.
    let dup = format!("{{\"__metadata__\": {{}}, {}", &text[1..]);
    let (s, msg) = status_of(&Model::from_bytes(&raw_file(dup.as_bytes(), data)));
    ensure(s == GRAN_STATUS_OK || s == GRAN_STATUS_FORMAT, || format!("__metadata__ twice: {} {msg}", name(s)))?;
    let dup_first = format!("{}, \"__metadata__\": {{}}}}", &text[..text.len() - 1]);
    expect_format(&raw_file(dup_first.as_bytes(), data), "an empty __metadata__ after the real one")?;
    Ok(format!(
        "{} headers and {} tensor entries: FORMAT; __metadata__ twice (the real one last): {}",
        texts.len() + 2,
        entries.len(),
        name(s)
    ))
}

/// Tables that do not describe a generator: wrong dtypes, shapes and offsets, overlapping,
/// gapped, missing and extra tensors.
fn bad_tables() -> Result<String, String> {
    let mut n = 0;
    for f in FILES {
        let bytes = test_file(f);
        let p = parts(&bytes);
        let name = "g.dec.conv0.weight".to_string();
        let dtype = p.tensors[&name].dtype.clone();
        let other_dtype = if dtype == "F32" { "BF16" } else { "F32" };
        // dtypes (the table still tiles the data: only the dtype is wrong).
        for d in [other_dtype, "F16", "F64", "I32", "U8", "bf16", "", "F32 "] {
            n += 1;
            let b = edit_header(&bytes, |o| {
                o.get_mut(&name).unwrap()["dtype"] = json!(d);
            });
            expect_format(&b, &format!("{f}: {name} as {d}"))?;
        }
        // Shapes, with offsets that still match the byte count where possible.
        let shape = p.tensors[&name].shape.clone();
        let mut shapes: Vec<Vec<u64>> = vec![
            shape.iter().rev().cloned().collect(),
            shape[1..].to_vec(),
            [shape.clone(), vec![1]].concat(),
            vec![shape.iter().product()],
            vec![0],
            vec![],
            vec![u64::MAX, 2],
            vec![1 << 32, 1 << 32, 1 << 32],
        ];
        shapes.retain(|s| *s != shape);
        for s in &shapes {
            n += 1;
            let b = edit_header(&bytes, |o| {
                o.get_mut(&name).unwrap()["shape"] = json!(s);
            });
            expect_format(&b, &format!("{f}: {name} of shape {s:?}"))?;
        }
        // Offsets: shifted, reversed, past the data, overlapping a neighbour, with a gap.
        let (h, _) = header(&bytes);
        let off = |k: &str| -> (u64, u64) {
            let o = h[k]["data_offsets"].as_array().unwrap();
            (o[0].as_u64().unwrap(), o[1].as_u64().unwrap())
        };
        let (a, b0) = off(&name);
        let data_len = (bytes.len() - header(&bytes).1) as u64;
        let offsets = [
            (a + 1, b0 + 1),
            (a.saturating_sub(2), b0.saturating_sub(2)),
            (b0, a),
            (data_len, data_len + (b0 - a)),
            (u64::MAX - (b0 - a), u64::MAX),
            (0, b0 - a),
            (a, b0 + 4),
            (a, a),
        ];
        for (s, e) in offsets {
            if (s, e) == (a, b0) {
                continue;
            }
            n += 1;
            let b = edit_header(&bytes, |o| {
                o.get_mut(&name).unwrap()["data_offsets"] = json!([s, e]);
            });
            expect_format(&b, &format!("{f}: {name} at {s}..{e}"))?;
        }
        // Two tensors with the same range (overlap) and the data one tensor longer (gap at the
        // end): every pair of neighbours swapped changes nothing (the loader sorts ranges), but
        // one tensor pointing at its neighbour's bytes overlaps and leaves a gap.
        let names: Vec<&String> = p.tensors.keys().collect();
        let (x, y) = (names[0].clone(), names[1].clone());
        n += 1;
        let b = edit_header(&bytes, |o| {
            let ya = o[&y]["data_offsets"].clone();
            if o[&x]["shape"] == o[&y]["shape"] {
                o.get_mut(&x).unwrap()["data_offsets"] = ya;
            } else {
                o.get_mut(&x).unwrap()["data_offsets"] = json!([0, 0]);
            }
        });
        expect_format(&b, &format!("{f}: {x} overlapping {y}"))?;
        // A gap: data with 4 extra bytes between two tensors (offsets shifted past it).
        n += 1;
        let (hh, start) = header(&bytes);
        let split = off(&y).0 as usize;
        let mut data = bytes[start..start + split].to_vec();
        data.extend_from_slice(&[0, 0, 0, 0]);
        data.extend_from_slice(&bytes[start + split..]);
        let mut hh = hh;
        for (k, v) in hh.as_object_mut().unwrap().iter_mut() {
            if k == "__metadata__" {
                continue;
            }
            let (s, e) = (v["data_offsets"][0].as_u64().unwrap(), v["data_offsets"][1].as_u64().unwrap());
            if s as usize >= split {
                v["data_offsets"] = json!([s + 4, e + 4]);
            }
        }
        expect_format(&raw_file(&serde_json::to_vec(&hh).unwrap(), &data), &format!("{f}: a 4-byte gap"))?;
        // Missing tensors; an extra tensor (an export holds exactly the generator's).
        for missing in [name.clone(), "g.hz.bn.running_var.0".into(), "g.enc.fc.bias".into()] {
            n += 1;
            let mut q = p.clone();
            q.tensors.remove(&missing);
            expect_format(&q.build(), &format!("{f} without {missing}"))?;
        }
        if f.contains("checkpoint") {
            n += 1;
            let mut q = p.clone();
            q.tensors.remove("ema.g.hz.fc.weight");
            expect_format(&q.build(), &format!("{f} without ema.g.hz.fc.weight"))?;
            // An extra tensor of a checkpoint (not the generator's) in the wrong dtype.
            n += 1;
            let mut q = p.clone();
            q.tensors.insert("zz.extra".into(), Tensor { dtype: "BF16".into(), shape: vec![2], bytes: vec![0; 4] });
            expect_format(&q.build(), &format!("{f} with an extra BF16 tensor"))?;
        } else {
            n += 1;
            let mut q = p.clone();
            let t = q.tensors[&name].clone();
            q.tensors.insert("g.zz.extra".into(), t);
            expect_format(&q.build(), &format!("{f} with an extra tensor"))?;
        }
    }
    Ok(format!("{n} bad tables: FORMAT"))
}

/// The checksum: a changed data byte, a changed, missing, empty or non-hex checksum field.
fn checksums() -> Result<String, String> {
    let mut n = 0;
    for f in FILES {
        let bytes = test_file(f);
        let start = header(&bytes).1;
        // A data byte changed: flip the lowest mantissa bit of a few values (still finite).
        for at in [start, start + 1, (start + bytes.len()) / 2, bytes.len() - 1] {
            n += 1;
            let mut b = bytes.clone();
            b[at] ^= 1;
            expect_format(&b, &format!("{f}: byte {at} changed"))?;
        }
        let p = parts(&bytes);
        let good = p.build();
        Model::from_bytes(&good).map_err(|e| format!("{f} rebuilt: {}", e.message))?;
        let sum = header(&good).0["__metadata__"]["checksum"].as_str().unwrap().to_string();
        let wrong = format!("{:016x}", u64::from_str_radix(&sum, 16).unwrap() ^ 1);
        for v in [wrong.as_str(), "", "0", "zz", "-1", "0x1234", &format!("{sum}0"), &format!(" {sum}")] {
            n += 1;
            let b = edit_header_with(&good, false, |o| {
                o.get_mut("__metadata__").unwrap()["checksum"] = json!(v);
            });
            expect_format(&b, &format!("{f}: checksum '{v}'"))?;
        }
        n += 1;
        let b = edit_header(&good, |o| {
            o.get_mut("__metadata__").unwrap().as_object_mut().unwrap().remove("checksum");
        });
        expect_format(&b, &format!("{f}: no checksum"))?;
        // A renamed tensor (the checksum covers the names).
        n += 1;
        let (h, start) = header(&good);
        let key = h.as_object().unwrap().keys().find(|k| k.starts_with("g.")).unwrap().clone();
        let mut h = h;
        let entry = h.as_object_mut().unwrap().remove(&key).unwrap();
        h.as_object_mut().unwrap().insert(key.replacen("g.", "g_", 1), entry);
        expect_format(&raw_file(&serde_json::to_vec(&h).unwrap(), &good[start..]), &format!("{f}: a renamed tensor"))?;
    }
    Ok(format!("{n} checksum cases: FORMAT"))
}

/// NaN and infinite weights, negative variances and Adam second moments, with valid checksums.
fn bad_values() -> Result<String, String> {
    let mut n = 0;
    for f in FILES {
        let p = parts(&test_file(f));
        let names: Vec<String> = p
            .tensors
            .keys()
            .filter(|k| k.starts_with("g.") || k.starts_with("ema.") || k.starts_with("adam_") || k.starts_with("d."))
            .cloned()
            .collect();
        // Every tensor of the file with a NaN, +inf and -inf at its first and last value.
        for name in &names {
            let len = p.tensors[name].bytes.len() / if p.tensors[name].dtype == "F32" { 4 } else { 2 };
            for v in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                for i in [0, len - 1] {
                    n += 1;
                    expect_format(&p.with_value(name, i, v), &format!("{f}: {name}[{i}] = {v}"))?;
                }
            }
        }
        // Negative running variances (and -0.0, which is allowed), Adam's second moments.
        for name in names.iter().filter(|k| k.contains(".running_var.") || k.starts_with("adam_g.v.")) {
            n += 1;
            expect_format(&p.with_value(name, 0, -1e-3), &format!("{f}: {name}[0] < 0"))?;
        }
        let var = p.find(".running_var.");
        let m = Model::from_bytes(&p.with_value(&var, 0, -0.0))
            .map_err(|e| format!("{f}: -0.0 variance: {}", e.message))?;
        draw_checked(&m, 2, "a -0.0 variance")?;
        // Extreme but finite weights load and draw (their products may overflow: NaN pixels
        // are 0).
        let w = p.find("g.dec.fc.weight");
        let big = if p.tensors[&w].dtype == "F32" { f32::MAX } else { f32::from_bits(0x7f7f_0000) };
        let mut q = p.clone();
        if p.tensors[&w].dtype == "F32" {
            for (i, c) in q.tensors.get_mut(&w).unwrap().bytes.chunks_exact_mut(4).enumerate() {
                c.copy_from_slice(&(if i % 2 == 0 { big } else { -big }).to_le_bytes());
            }
        }
        let m =
            Model::from_bytes(&p.with_value(&w, 0, big)).map_err(|e| format!("{f}: a huge weight: {}", e.message))?;
        draw_checked(&m, 2, "a huge weight")?;
        if p.tensors[&w].dtype == "F32" {
            let m = Model::from_bytes(&q.build()).map_err(|e| format!("{f}: huge weights: {}", e.message))?;
            draw_checked(&m, 2, "huge weights")?;
        }
    }
    Ok(format!("{n} bad values: FORMAT; extreme finite weights load and draw"))
}

/// Configurations out of range, unparsable or inconsistent with the table.
fn bad_config() -> Result<String, String> {
    let mut n = 0;
    let edits: &[(&str, &[&str])] = &[
        ("steps", &["0", "65", "-1", "4", "2", "1e1", "", "x", "4294967296"]),
        ("height", &["30", "0", "32", "27", "-28", "28.0"]),
        ("width", &["30", "32", "0"]),
        ("channels", &["2", "0", "3", "4294967295"]),
        ("z_dim", &["0", "4097", "15", "17", "-16"]),
        ("hidden_dim", &["0", "4097", "15"]),
        ("width_scale", &["NaN", "nan", "0", "9", "-0.0625", "inf", "-inf", "1e39", "8.0000001", "0.125", "x"]),
        ("leaky_relu", &["1", "yes", ""]),
        ("seed", &["-1", "18446744073709551616", "x"]),
        ("step", &["-1", "18446744073709551616", "x", ""]),
        ("device", &["gpu", "cuda:", "cuda:-1", "cuda:x", ""]),
        ("format", &["gran-model", "", "GRAN-GENERATOR"]),
        ("version", &["0", "2", "", "1.0"]),
    ];
    for f in FILES {
        let p = parts(&test_file(f));
        let mut wrong = Vec::new();
        for (key, values) in edits {
            for v in *values {
                // A checkpoint claiming fewer steps: checkpoint_tensor_set_is_exact.
                if f.contains("checkpoint") && *key == "steps" && (*v == "1" || *v == "2") {
                    continue;
                }
                n += 1;
                if let Err(e) = expect_format(&p.with_meta(key, v).build(), &format!("{f}: {key} = '{v}'")) {
                    wrong.push(e);
                }
            }
            n += 1;
            let mut q = p.clone();
            q.meta.remove(*key);
            if let Err(e) = expect_format(&q.build(), &format!("{f}: no {key}")) {
                wrong.push(e);
            }
        }
        ensure(wrong.is_empty(), || wrong.join("; "))?;
        if f.contains("checkpoint") {
            for (key, v) in [("adam_g_t", "59"), ("adam_d_t", "61"), ("adam_g_t", "x"), ("averaged", "2")] {
                n += 1;
                expect_format(&p.with_meta(key, v).build(), &format!("{f}: {key} = '{v}'"))?;
            }
        } else {
            for v in ["fp16", "", "F32"] {
                n += 1;
                expect_format(&p.with_meta("storage", v).build(), &format!("{f}: storage '{v}'"))?;
            }
        }
    }
    // Accepted variations: a step counter at u64::MAX; CUDA devices (where it was trained).
    let p = parts(&test_file(FILES[0]));
    for (key, v) in [("step", "18446744073709551615"), ("device", "cuda"), ("device", "cuda:3"), ("seed", "0")] {
        n += 1;
        let m = Model::from_bytes(&p.with_meta(key, v).build()).map_err(|e| format!("{key} = '{v}': {}", e.message))?;
        draw_checked(&m, 1, key)?;
    }
    Ok(format!("{n} configurations: out-of-range ones FORMAT, valid variations OK"))
}

/// A checkpoint's table is libgran's exactly (src/io/container.rs, check_table): the tensors of
/// its configuration's layout (generator, discriminator, Adam's moments, the averaged
/// generator), no more, each of its exact shape. The checksum covers only the tensors, so a
/// metadata edit that still matches the generator's shapes must be caught by the table.
fn checkpoint_tensor_set_is_exact() -> Result<String, String> {
    let p = parts(&test_file(FILES[2]));
    let mut wrong = Vec::new();
    let mut check = |bytes: Vec<u8>, what: &str| {
        if let Err(e) = expect_format(&bytes, what) {
            wrong.push(e);
        }
    };
    // steps 3 -> 2 or 1: every tensor the smaller layout wants is there, of the same shape.
    check(p.with_meta("steps", "2").build(), "a T=3 checkpoint claiming steps = 2");
    check(p.with_meta("steps", "1").build(), "a T=3 checkpoint claiming steps = 1");
    // An extra tensor (libgran: "N tensors where M were expected").
    let mut q = p.clone();
    q.tensors.insert("zz.extra".into(), Tensor { dtype: "F32".into(), shape: vec![2], bytes: vec![0; 8] });
    check(q.build(), "a checkpoint with an extra F32 tensor");
    // A discriminator tensor and an Adam moment with their dimensions reversed (same bytes).
    for t in ["d.conv1.weight", "adam_g.m.g.dec.conv0.weight"] {
        let mut q = p.clone();
        match q.tensors.get_mut(t) {
            Some(e) => e.shape.reverse(),
            None => continue,
        }
        check(q.build(), &format!("a checkpoint with {t} of reversed shape"));
    }
    // 'averaged' removed: the averaged generator's tensors are then extra.
    let mut q = p.clone();
    q.meta.remove("averaged");
    check(q.build(), "a checkpoint with ema.g.* tensors but no 'averaged' field");
    ensure(wrong.is_empty(), || format!("{} loaded where libgran refuses: {}", wrong.len(), wrong.join("; ")))?;
    Ok("every table libgran refuses is FORMAT".into())
}

/// Valid exports of other sizes, channel counts and step counts, class-conditional ones too
/// (built from the layout), load and draw through the C functions: values in range, HWC and
/// CHW the same pixels, the last block of the steps equal to the images, 3 threads as 1, and
/// truncated or re-dimensioned copies FORMAT.
fn other_configurations_draw() -> Result<String, String> {
    let dir = scratch("configs");
    let mut done = Vec::new();
    for (size, ch, t, z, h, scale, classes) in [
        (28u32, 3u32, 1u32, 4u64, 4u64, 0.03125f64, 0u64),
        (32, 3, 2, 8, 8, 0.0625, 0),
        (32, 1, 64, 2, 3, 0.01, 0),
        (64, 3, 2, 8, 8, 0.03125, 0),
        (128, 1, 1, 8, 8, 0.03125, 0),
        (128, 3, 2, 5, 7, 0.02, 0),
        // Class-conditional: gran_sample draws each image's class from (seed, i).
        (32, 3, 2, 8, 8, 0.0625, 10),
        (28, 1, 3, 4, 4, 0.03125, 256),
    ] {
        let what = format!("{size}x{size}x{ch}, T={t}, z {z}, h {h}, scale {scale}, classes {classes}");
        let c = Synthetic { size, channels: ch, steps: t, z, h, scale, classes };
        let bytes = synthetic_export(c, size as u64 * 31 + t as u64);
        let path = dir.join("model.safetensors");
        std::fs::write(&path, &bytes).unwrap();
        let (s, m) = c_load(&path);
        expect(s, GRAN_STATUS_OK, &what)?;
        let mut cfg = GranModelConfig::DEFAULT;
        // SAFETY: a valid GranModelConfig.
        expect(unsafe { gran_model_config(m, &mut cfg) }, GRAN_STATUS_OK, "config")?;
        let stated = (cfg.height, cfg.channels, cfg.steps, cfg.z_dim, cfg.classes);
        ensure(stated == (size, ch, t, z as u32, classes as u32), || format!("{what}: {cfg:?}"))?;
        let n = 3usize;
        let img = (size * size * ch) as usize;
        let (mut hwc, mut chw) = (vec![0u8; n * img], vec![0u8; n * img]);
        let mut f = vec![0f32; n * img];
        let mut steps = vec![0u8; t as usize * n * img];
        let mut threaded = vec![0u8; n * img];
        // SAFETY: every buffer holds what it is said to.
        unsafe {
            expect(gran_sample(m, 4, n as u32, 0, hwc.as_mut_ptr().cast(), hwc.len()), GRAN_STATUS_OK, &what)?;
            expect(gran_sample(m, 4, n as u32, 1, chw.as_mut_ptr().cast(), chw.len()), GRAN_STATUS_OK, &what)?;
            expect(gran_sample(m, 4, n as u32, 2, f.as_mut_ptr().cast(), f.len() * 4), GRAN_STATUS_OK, &what)?;
            expect(
                gran_sample_steps(m, 4, n as u32, 1, steps.as_mut_ptr().cast(), steps.len()),
                GRAN_STATUS_OK,
                &what,
            )?;
            expect(gran_set_num_threads(3), GRAN_STATUS_OK, "3 threads")?;
            let st = gran_sample(m, 4, n as u32, 0, threaded.as_mut_ptr().cast(), threaded.len());
            gran_set_num_threads(1);
            expect(st, GRAN_STATUS_OK, &what)?;
        }
        ensure(f.iter().all(|v| (0.0..=1.0).contains(v)), || format!("{what}: a float outside [0, 1]"))?;
        let plane = (size * size) as usize;
        let c = ch as usize;
        for i in 0..n {
            for p in 0..plane {
                for k in 0..c {
                    let (a, b) = (hwc[i * img + p * c + k], chw[i * img + k * plane + p]);
                    ensure(a == b, || format!("{what}: image {i} pixel {p} channel {k}: HWC {a}, CHW {b}"))?;
                }
            }
        }
        ensure(steps[(t as usize - 1) * n * img..] == chw[..], || format!("{what}: the last step is not the image"))?;
        ensure(hwc.iter().zip(&threaded).all(|(a, b)| a.abs_diff(*b) <= 1), || format!("{what}: 3 threads differ"))?;
        let distinct = hwc.iter().collect::<std::collections::BTreeSet<_>>().len();
        ensure(distinct > 1, || format!("{what}: every pixel is the same"))?;
        expect(gran_model_free(m), GRAN_STATUS_OK, "free")?;
        // The same file cut short, or claiming another size or channel count: FORMAT.
        expect_format(&bytes[..bytes.len() - 1], &format!("{what}, cut"))?;
        let p = parts(&bytes);
        let other = if size == 128 { "64" } else { "128" };
        expect_format(&p.with_meta("height", other).with_meta("width", other).build(), &format!("{what} as {other}"))?;
        expect_format(&p.with_meta("channels", if ch == 1 { "3" } else { "1" }).build(), &format!("{what}, channels"))?;
        done.push(format!(
            "{size}x{size}x{ch} T={t}{}",
            if classes > 0 { format!(" {classes} classes") } else { String::new() }
        ));
    }
    std::fs::remove_dir_all(&dir).ok();
    Ok(format!("{} configurations draw: {}", done.len(), done.join(", ")))
}

/// Claims of sizes that cannot be: a header of 2^63 bytes, tensors of 2^63 values, a checkpoint
/// with an unknown tensor of 2^40 bytes; refused without allocating what they claim.
fn huge_claims() -> Result<String, String> {
    reset_peak();
    let before = peak_kib();
    let bytes = test_file(FILES[2]);
    let mut b = bytes.clone();
    b[..8].copy_from_slice(&(1u64 << 63).to_le_bytes());
    expect_format(&b, "a header of 2^63 bytes")?;
    let p = parts(&bytes);
    for (shape, end) in [
        (vec![1u64 << 61], 1u64 << 63),
        (vec![1 << 38], 1 << 40),
        (vec![1 << 31, 1 << 31, 4], u64::MAX),
        (vec![u64::MAX], u64::MAX),
    ] {
        let b = edit_header(&p.build(), |o| {
            o.insert("zz.huge".into(), json!({"dtype": "F32", "shape": shape, "data_offsets": [0, end]}));
        });
        expect_format(&b, &format!("a tensor of shape {shape:?}"))?;
    }
    // Through a file too: a header that says its data is 1 TiB long.
    let dir = scratch("huge");
    let path = dir.join("huge.safetensors");
    let b = edit_header(&p.build(), |o| {
        o.insert("zz.huge".into(), json!({"dtype": "F32", "shape": [1u64 << 38], "data_offsets": [0, 1u64 << 40]}));
    });
    std::fs::write(&path, b).unwrap();
    let (s, _) = c_load(&path);
    expect(s, GRAN_STATUS_FORMAT, "a file claiming 1 TiB")?;
    std::fs::remove_dir_all(&dir).ok();
    let grown = peak_kib().saturating_sub(before);
    ensure(grown < 64 << 10, || format!("the peak resident size grew by {grown} KiB"))?;
    Ok(format!("FORMAT; peak grew {grown} KiB"))
}

/// gran_model_load on missing paths, folders, a FIFO, /dev/zero, a symbolic link, truncated
/// and non-gran files, and bad devices.
fn files_through_c() -> Result<String, String> {
    let dir = scratch("files");
    let (s, _) = c_load(&dir.join("missing.safetensors"));
    expect(s, GRAN_STATUS_IO, "a missing file")?;
    let (s, _) = c_load(&dir);
    expect(s, GRAN_STATUS_IO, "a folder")?;
    let (s, _) = c_load(Path::new("/dev/zero"));
    expect(s, GRAN_STATUS_IO, "/dev/zero")?;
    let fifo = dir.join("fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().map(|s| s.success()).unwrap_or(false);
    if made {
        let (s, _) = c_load(&fifo);
        expect(s, GRAN_STATUS_IO, "a FIFO")?;
    }
    let bytes = test_file(FILES[1]);
    let cut = dir.join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let (s, _) = c_load(&cut);
    expect(s, GRAN_STATUS_FORMAT, "a truncated copy")?;
    let empty = dir.join("empty");
    std::fs::write(&empty, b"").unwrap();
    let (s, _) = c_load(&empty);
    expect(s, GRAN_STATUS_FORMAT, "an empty file")?;
    let text = dir.join("notes.txt");
    std::fs::write(&text, "this is not a model\n".repeat(100)).unwrap();
    let (s, _) = c_load(&text);
    expect(s, GRAN_STATUS_FORMAT, "a text file")?;
    let link = dir.join("link.safetensors");
    std::os::unix::fs::symlink(data_dir().join(FILES[0]), &link).unwrap();
    let (s, m) = c_load(&link);
    expect(s, GRAN_STATUS_OK, "a symbolic link to a model")?;
    expect(gran_model_free(m), GRAN_STATUS_OK, "free")?;
    let dangling = dir.join("dangling");
    std::os::unix::fs::symlink(dir.join("nowhere"), &dangling).unwrap();
    let (s, _) = c_load(&dangling);
    expect(s, GRAN_STATUS_IO, "a dangling link")?;
    // An unreadable file (root reads it anyway: then it loads).
    let locked = dir.join("locked.safetensors");
    std::fs::write(&locked, &bytes).unwrap();
    std::fs::set_permissions(&locked, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    let (s, m) = c_load(&locked);
    ensure(s == GRAN_STATUS_IO || s == GRAN_STATUS_OK, || format!("an unreadable file: {}", name(s)))?;
    gran_model_free(m);
    // Devices: CPU and AUTO load; CUDA and unknown kinds are DEVICE.
    let good = c_path(&data_dir().join(FILES[0]));
    for (kind, index, want) in [
        (GRAN_DEVICE_CPU, 0, GRAN_STATUS_OK),
        (GRAN_DEVICE_AUTO, 0, GRAN_STATUS_OK),
        (GRAN_DEVICE_CPU, -5, GRAN_STATUS_OK),
        (GRAN_DEVICE_CUDA, 0, GRAN_STATUS_DEVICE),
        (99, 0, GRAN_STATUS_DEVICE),
        (u32::MAX, i32::MIN, GRAN_STATUS_DEVICE),
    ] {
        let d = GranDevice { kind, index };
        let mut m: GranModel = 0;
        // SAFETY: valid pointers.
        let s = unsafe { gran_model_load(good.as_ptr(), &d, &mut m) };
        expect(s, want, &format!("device kind {kind} index {index}"))?;
        ensure((want == GRAN_STATUS_OK) == (m != 0), || format!("device {kind}: handle {m}"))?;
        gran_model_free(m);
    }
    // Paths: empty, not UTF-8.
    let mut m: GranModel = 0;
    // SAFETY: NUL-terminated strings and a valid out pointer.
    let s = unsafe { gran_model_load(c"".as_ptr(), std::ptr::null(), &mut m) };
    expect(s, GRAN_STATUS_INVALID_ARGUMENT, "an empty path")?;
    // SAFETY: as above.
    let s = unsafe { gran_model_load(c"/tmp/\xff\xfe.safetensors".as_ptr(), std::ptr::null(), &mut m) };
    ensure(s == GRAN_STATUS_INVALID_ARGUMENT || s == GRAN_STATUS_IO, || format!("a non-UTF-8 path: {}", name(s)))?;
    ensure(m == 0, || "a failed load wrote its handle".into())?;
    std::fs::remove_dir_all(&dir).ok();
    Ok(format!("IO, FORMAT and DEVICE as documented{}", if made { "" } else { " (no mkfifo: FIFO skipped)" }))
}

/// NULL pointers to every function that takes one.
fn null_pointers() -> Result<String, String> {
    let m = c_model(FILES[0])?;
    let path = c_path(&data_dir().join(FILES[0]));
    let null_mut = std::ptr::null_mut::<c_void>();
    let mut out: GranModel = 0;
    let mut buf = vec![0u8; 784 * 3 * 4 * 2];
    let mut z = vec![0f32; 32];
    // SAFETY: every pointer is NULL or valid for the sizes given.
    unsafe {
        expect(
            gran_model_load(std::ptr::null(), std::ptr::null(), &mut out),
            GRAN_STATUS_INVALID_ARGUMENT,
            "load NULL path",
        )?;
        expect(
            gran_model_load(path.as_ptr(), std::ptr::null(), std::ptr::null_mut()),
            GRAN_STATUS_INVALID_ARGUMENT,
            "load NULL out",
        )?;
        expect(gran_model_config(m, std::ptr::null_mut()), GRAN_STATUS_INVALID_ARGUMENT, "config NULL")?;
        expect(gran_model_step(m, std::ptr::null_mut()), GRAN_STATUS_INVALID_ARGUMENT, "step NULL")?;
        expect(gran_model_has_averaged(m, std::ptr::null_mut()), GRAN_STATUS_INVALID_ARGUMENT, "has_averaged NULL")?;
        expect(
            gran_model_inference_only(m, std::ptr::null_mut()),
            GRAN_STATUS_INVALID_ARGUMENT,
            "inference_only NULL",
        )?;
        for f in [GRAN_PIXEL_FORMAT_U8_HWC, GRAN_PIXEL_FORMAT_U8_CHW, GRAN_PIXEL_FORMAT_F32_CHW] {
            expect(gran_sample(m, 1, 1, f, null_mut, 1 << 20), GRAN_STATUS_INVALID_ARGUMENT, "sample NULL")?;
            expect(gran_sample_steps(m, 1, 1, f, null_mut, 1 << 20), GRAN_STATUS_INVALID_ARGUMENT, "steps NULL")?;
            expect(
                gran_generate(m, std::ptr::null(), 1, f, buf.as_mut_ptr().cast(), buf.len()),
                GRAN_STATUS_INVALID_ARGUMENT,
                "generate NULL z",
            )?;
            expect(
                gran_generate(m, z.as_ptr(), 1, f, null_mut, 1 << 20),
                GRAN_STATUS_INVALID_ARGUMENT,
                "generate NULL out",
            )?;
        }
        expect(gran_latents(m, 1, 1, std::ptr::null_mut(), 16), GRAN_STATUS_INVALID_ARGUMENT, "latents NULL")?;
        // NULL with a length of 0 bytes: too small before NULL (both are failures).
        let s = gran_sample(m, 1, 1, 0, null_mut, 0);
        ensure(s == GRAN_STATUS_BUFFER_TOO_SMALL || s == GRAN_STATUS_INVALID_ARGUMENT, || {
            format!("sample NULL, 0: {}", name(s))
        })?;
        let png = c"/tmp/gran-runtime-hostile-null.png";
        expect(
            gran_write_png(std::ptr::null(), buf.as_ptr().cast(), 1, 28, 28, 1, 0, 1),
            GRAN_STATUS_INVALID_ARGUMENT,
            "png NULL path",
        )?;
        expect(
            gran_write_png(png.as_ptr(), std::ptr::null(), 1, 28, 28, 1, 0, 1),
            GRAN_STATUS_INVALID_ARGUMENT,
            "png NULL pixels",
        )?;
        ensure(!Path::new("/tmp/gran-runtime-hostile-null.png").exists(), || {
            "a PNG was written from NULL pixels".into()
        })?;
        // gran_last_error with NULL and a length; gran_model_config_init(NULL).
        let n = gran_last_error(std::ptr::null_mut(), 100);
        ensure(n > 0, || "no message after failures".into())?;
        gran_model_config_init(std::ptr::null_mut());
        gran_set_log_callback(None, std::ptr::null_mut(), u32::MAX);
        // And one call that works: nothing above damaged the model.
        expect(gran_sample(m, 1, 2, 0, buf.as_mut_ptr().cast(), 2 * 784), GRAN_STATUS_OK, "sample after NULLs")?;
        expect(gran_latents(m, 1, 2, z.as_mut_ptr(), z.len()), GRAN_STATUS_OK, "latents")?;
    }
    expect(gran_model_free(m), GRAN_STATUS_OK, "free")?;
    Ok("INVALID_ARGUMENT for every NULL".into())
}

/// Counts of 2^32 - 1 with small buffers: BUFFER_TOO_SMALL without allocating; an image count
/// whose byte size overflows; PNG dimensions at u32::MAX.
fn huge_counts() -> Result<String, String> {
    let m = c_model(FILES[2])?;
    let mut small = vec![0u8; 4096];
    let mut z = vec![0f32; 64];
    reset_peak();
    let before = peak_kib();
    let started = Instant::now();
    // SAFETY: the buffers are valid for the lengths given.
    unsafe {
        for f in [GRAN_PIXEL_FORMAT_U8_HWC, GRAN_PIXEL_FORMAT_U8_CHW, GRAN_PIXEL_FORMAT_F32_CHW] {
            let p = small.as_mut_ptr().cast();
            expect(gran_sample(m, 1, u32::MAX, f, p, small.len()), GRAN_STATUS_BUFFER_TOO_SMALL, "sample 2^32-1")?;
            let msg = last_error();
            let needed = (u32::MAX as u128 * 784 * if f == 2 { 4 } else { 1 }).to_string();
            ensure(msg.contains(&needed), || format!("the message lacks the size needed ({needed}): {msg}"))?;
            expect(gran_sample_steps(m, 1, u32::MAX, f, p, small.len()), GRAN_STATUS_BUFFER_TOO_SMALL, "steps 2^32-1")?;
            expect(
                gran_generate(m, z.as_ptr(), u32::MAX, f, p, small.len()),
                GRAN_STATUS_BUFFER_TOO_SMALL,
                "generate 2^32-1",
            )?;
            // One byte short of a real request.
            let need = 5 * 784 * if f == 2 { 4 } else { 1 };
            expect(gran_sample(m, 1, 5, f, p, need - 1), GRAN_STATUS_BUFFER_TOO_SMALL, "sample one byte short")?;
            expect(
                gran_sample_steps(m, 1, 1, f, p, 3 * need / 5 - 1),
                GRAN_STATUS_BUFFER_TOO_SMALL,
                "steps one byte short",
            )?;
        }
        expect(gran_latents(m, 1, u32::MAX, z.as_mut_ptr(), z.len()), GRAN_STATUS_BUFFER_TOO_SMALL, "latents 2^32-1")?;
        expect(gran_latents(m, 1, 4, z.as_mut_ptr(), 63), GRAN_STATUS_BUFFER_TOO_SMALL, "latents one short")?;
        expect(gran_latents(m, 1, 0, z.as_mut_ptr(), z.len()), GRAN_STATUS_INVALID_ARGUMENT, "latents count 0")?;
        expect(
            gran_sample(m, 1, 0, 0, small.as_mut_ptr().cast(), small.len()),
            GRAN_STATUS_INVALID_ARGUMENT,
            "sample count 0",
        )?;
        // A buffer that claims usize::MAX bytes with a count that needs a few: only those are
        // written (the caller's claim is not trusted past what is needed).
        let mut guard = vec![0xAAu8; 784 + 16];
        expect(gran_sample(m, 1, 1, 0, guard.as_mut_ptr().cast(), 784), GRAN_STATUS_OK, "sample exactly")?;
        ensure(guard[784..].iter().all(|&b| b == 0xAA), || "sample wrote past its image".into())?;
        // PNG dimensions at u32::MAX: INVALID_ARGUMENT before the pixels are read.
        let png = c"/tmp/gran-runtime-hostile-huge.png";
        for (count, h, w, c, cols) in [
            (u32::MAX, 28, 28, 1, 8),
            (1, u32::MAX, u32::MAX, 1, 1),
            (1, 16385, 1, 1, 1),
            (1, 28, 28, 2, 1),
            (1, 28, 28, u32::MAX, 1),
            (1, 0, 28, 1, 1),
            (4, 28, 28, 1, 0),
            (1 << 20, 1024, 1024, 3, 1),
        ] {
            let s = gran_write_png(png.as_ptr(), small.as_ptr().cast(), count, h, w, c, 0, cols);
            expect(s, GRAN_STATUS_INVALID_ARGUMENT, &format!("png {count} x {h}x{w}x{c} in {cols} columns"))?;
        }
        ensure(!Path::new("/tmp/gran-runtime-hostile-huge.png").exists(), || "a PNG was written".into())?;
    }
    let grown = peak_kib().saturating_sub(before);
    ensure(grown < 32 << 10, || format!("the peak resident size grew by {grown} KiB"))?;
    let secs = started.elapsed().as_secs_f64();
    ensure(secs < 5.0, || format!("the refusals took {secs:.1} s"))?;
    gran_model_free(m);
    Ok(format!("BUFFER_TOO_SMALL / INVALID_ARGUMENT at once; peak grew {grown} KiB"))
}

/// Misaligned float pointers and non-finite latents.
fn misaligned_and_non_finite() -> Result<String, String> {
    let m = c_model(FILES[1])?;
    let mut raw = vec![0u8; 16 * 4 * 4 + 8];
    let base = raw.as_mut_ptr();
    let off = (4 - base as usize % 4) % 4 + 1; // 1 byte past a 4-byte boundary
    let mut out = vec![0u8; 4 * 784 * 4 + 8];
    let odd_status;
    // SAFETY: every pointer points into a buffer large enough for the lengths given.
    unsafe {
        let z = base.add(off) as *mut f32;
        expect(gran_latents(m, 1, 2, z, 32), GRAN_STATUS_INVALID_ARGUMENT, "latents into a misaligned z")?;
        expect(
            gran_generate(m, z, 2, 0, out.as_mut_ptr().cast(), out.len()),
            GRAN_STATUS_INVALID_ARGUMENT,
            "generate from a misaligned z",
        )?;
        // Float pixels at an odd address: written byte by byte (as libgran): equal to aligned.
        let aligned_off = (4 - out.as_ptr() as usize % 4) % 4;
        let mut aligned = vec![0u8; 2 * 784 * 4];
        expect(gran_sample(m, 3, 2, 2, aligned.as_mut_ptr().cast(), aligned.len()), GRAN_STATUS_OK, "F32 aligned")?;
        let odd = out.as_mut_ptr().add(aligned_off + 1);
        let s = gran_sample(m, 3, 2, 2, odd.cast(), 2 * 784 * 4);
        odd_status = name(s);
        ensure(s == GRAN_STATUS_OK || s == GRAN_STATUS_INVALID_ARGUMENT, || {
            format!("F32 misaligned out: {}", name(s))
        })?;
        if s == GRAN_STATUS_OK {
            ensure(out[aligned_off + 1..aligned_off + 1 + aligned.len()] == aligned[..], || {
                "misaligned F32 differs".into()
            })?;
        }
        // Non-finite latents: NaN, +inf, -inf at the first and the last value.
        let mut zs = [0.5f32; 2 * 16];
        for v in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            for i in [0, 31] {
                zs.fill(0.5);
                zs[i] = v;
                out.fill(0xAA);
                let s = gran_generate(m, zs.as_ptr(), 2, 0, out.as_mut_ptr().cast(), out.len());
                expect(s, GRAN_STATUS_INVALID_ARGUMENT, &format!("z[{i}] = {v}"))?;
                ensure(out.iter().all(|&b| b == 0xAA), || format!("z[{i}] = {v}: out written"))?;
            }
        }
        // Huge finite latents draw.
        zs.fill(f32::MAX);
        expect(
            gran_generate(m, zs.as_ptr(), 2, 2, out.as_mut_ptr().cast(), 2 * 784 * 4),
            GRAN_STATUS_OK,
            "z = f32::MAX",
        )?;
        // Unknown pixel formats.
        for f in [3, 4, u32::MAX] {
            expect(
                gran_sample(m, 1, 1, f, out.as_mut_ptr().cast(), out.len()),
                GRAN_STATUS_INVALID_ARGUMENT,
                "format",
            )?;
            expect(
                gran_generate(m, zs.as_ptr(), 1, f, out.as_mut_ptr().cast(), out.len()),
                GRAN_STATUS_INVALID_ARGUMENT,
                "format",
            )?;
            let png = c"/tmp/gran-runtime-hostile-format.png";
            expect(
                gran_write_png(png.as_ptr(), out.as_ptr().cast(), 1, 28, 28, 1, f, 1),
                GRAN_STATUS_INVALID_ARGUMENT,
                "png format",
            )?;
        }
        // Float pixels outside [0, 1] (and NaN) to gran_write_png.
        let dir = scratch("png");
        let png = c_path(&dir.join("bad.png"));
        for v in [f32::NAN, -0.5, 1.5, f32::INFINITY] {
            let mut px = vec![0.5f32; 784];
            px[100] = v;
            let s = gran_write_png(png.as_ptr(), px.as_ptr().cast(), 1, 28, 28, 1, 2, 1);
            expect(s, GRAN_STATUS_INVALID_ARGUMENT, &format!("png with a pixel of {v}"))?;
        }
        ensure(!dir.join("bad.png").exists(), || "a PNG of bad floats was written".into())?;
        std::fs::remove_dir_all(&dir).ok();
    }
    gran_model_free(m);
    Ok(format!(
        "INVALID_ARGUMENT for misaligned z, non-finite latents, unknown formats; F32 pixels to an odd address: {odd_status}"
    ))
}

/// Handles (0, freed, forged), configuration sizes, generators and thread counts.
fn handles_and_settings() -> Result<String, String> {
    let m = c_model(FILES[2])?;
    let mut buf = vec![0u8; 784];
    let mut step = 0u64;
    let mut flag = 0i32;
    let mut cfg = GranModelConfig::DEFAULT;
    let forged = [0, m + 1, m + 1000, m ^ (1 << 40), u64::MAX, 1 << 63, 0xDEAD_BEEF_CAFE_F00D];
    // SAFETY: valid pointers for the sizes given.
    unsafe {
        for h in forged {
            let want = GRAN_STATUS_INVALID_HANDLE;
            expect(gran_sample(h, 1, 1, 0, buf.as_mut_ptr().cast(), 784), want, &format!("sample handle {h:#x}"))?;
            expect(gran_model_step(h, &mut step), want, "step")?;
            expect(gran_model_config(h, &mut cfg), want, "config")?;
            expect(gran_model_set_generator(h, 0), want, "set_generator")?;
            if h != 0 {
                expect(gran_model_free(h), want, &format!("free handle {h:#x}"))?;
            }
        }
        expect(gran_model_free(0), GRAN_STATUS_OK, "free 0")?;
        // struct_size below 8, 8 (only the first 8 bytes written), a larger one.
        let mut raw = [0xEEu8; std::mem::size_of::<GranModelConfig>() + 16];
        for size in [0u32, 4, 7] {
            raw[..4].copy_from_slice(&size.to_ne_bytes());
            expect(
                gran_model_config(m, raw.as_mut_ptr().cast()),
                GRAN_STATUS_INVALID_ARGUMENT,
                &format!("struct_size {size}"),
            )?;
        }
        raw[..4].copy_from_slice(&8u32.to_ne_bytes());
        expect(gran_model_config(m, raw.as_mut_ptr().cast()), GRAN_STATUS_OK, "struct_size 8")?;
        ensure(u32::from_ne_bytes(raw[4..8].try_into().unwrap()) == 28, || "height not written".into())?;
        ensure(raw[8..].iter().all(|&b| b == 0xEE), || "bytes past struct_size written".into())?;
        // Generators.
        for g in [2, 7, u32::MAX] {
            expect(gran_model_set_generator(m, g), GRAN_STATUS_INVALID_ARGUMENT, &format!("generator {g}"))?;
        }
        expect(gran_model_has_averaged(m, &mut flag), GRAN_STATUS_OK, "has_averaged")?;
        ensure(flag == 1, || "the checkpoint has no averaged generator".into())?;
        // Thread counts.
        for t in [0, -1, 257, i32::MIN, i32::MAX] {
            expect(gran_set_num_threads(t), GRAN_STATUS_INVALID_ARGUMENT, &format!("{t} threads"))?;
        }
        ensure(gran_num_threads() == 1, || "a refused count changed the setting".into())?;
        expect(gran_set_num_threads(256), GRAN_STATUS_OK, "256 threads")?;
        let mut many = vec![0u8; 3 * 784];
        expect(
            gran_sample(m, 1, 3, 0, many.as_mut_ptr().cast(), many.len()),
            GRAN_STATUS_OK,
            "3 images on 256 threads",
        )?;
        expect(gran_set_num_threads(1), GRAN_STATUS_OK, "1 thread")?;
        let mut one = vec![0u8; 3 * 784];
        expect(gran_sample(m, 1, 3, 0, one.as_mut_ptr().cast(), one.len()), GRAN_STATUS_OK, "3 images on 1 thread")?;
        ensure(many.iter().zip(&one).all(|(a, b)| a.abs_diff(*b) <= 1), || "256 threads differ from 1".into())?;
        // Status strings of everything that is not a status.
        for s in [-1, 13, i32::MIN, i32::MAX] {
            ensure(name(s) == "GRAN_STATUS_UNKNOWN", || format!("status {s}: {}", name(s)))?;
        }
        // Freed: every call is INVALID_HANDLE, a second free too.
        expect(gran_model_free(m), GRAN_STATUS_OK, "free")?;
        expect(gran_sample(m, 1, 1, 0, buf.as_mut_ptr().cast(), 784), GRAN_STATUS_INVALID_HANDLE, "sample freed")?;
        expect(gran_model_free(m), GRAN_STATUS_INVALID_HANDLE, "free twice")?;
        // A new model never reuses the handle.
        let again = c_model(FILES[2])?;
        ensure(again != m, || "a handle was reused".into())?;
        gran_model_free(again);
    }
    Ok("INVALID_HANDLE, INVALID_ARGUMENT as documented".into())
}

// ---------------------------------------------------------------------------------------------
// Fuzz

/// Metadata values the header edits put in.
const META_VALUES: &[&str] = &[
    "0",
    "1",
    "2",
    "3",
    "-1",
    "16",
    "28",
    "30",
    "64",
    "65",
    "4096",
    "4097",
    "4294967296",
    "18446744073709551616",
    "NaN",
    "inf",
    "0.0625",
    "9",
    "1e-45",
    "",
    "true",
    "false",
    "cpu",
    "cuda:0",
    "cuda:99999999999",
    "bf16",
    "fp32",
    "gran-generator",
    "gran-checkpoint",
    "60",
    "ffffffffffffffff",
    " 28",
];

const DTYPES: &[&str] = &["F32", "BF16", "F16", "F64", "I64", "U8", "", "BOOL"];

/// One mutation of `bytes` (`other`: another file to splice from).
fn mutate(rng: &mut Rng, bytes: &[u8], other: &[u8]) -> (Vec<u8>, &'static str) {
    let (_, start) = header(bytes);
    let mut b = bytes.to_vec();
    match rng.below(9) {
        0 => {
            for _ in 0..1 + rng.below(8) {
                let at = rng.below(b.len());
                b[at] ^= 1 + rng.below(255) as u8;
            }
            (b, "byte flips")
        }
        1 => {
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(start);
                b[at] ^= 1 << rng.below(8);
            }
            (b, "header bit flips")
        }
        2 => {
            b.truncate(rng.below(bytes.len()));
            (b, "truncation")
        }
        3 => {
            // Splice: a piece of this or the other file over another place.
            let src = if rng.below(2) == 0 { bytes } else { other };
            let len = 1 + rng.below(256);
            let (from, to) =
                (rng.below(src.len().saturating_sub(len).max(1)), rng.below(b.len().saturating_sub(len).max(1)));
            let piece = &src[from..(from + len).min(src.len())];
            let end = (to + piece.len()).min(b.len());
            b[to..end].copy_from_slice(&piece[..end - to]);
            (b, "splice")
        }
        4 => {
            // Insert or delete a run of bytes.
            let at = rng.below(b.len());
            let len = 1 + rng.below(64);
            if rng.below(2) == 0 {
                b.drain(at..(at + len).min(b.len()));
            } else {
                let fill = rng.next() as u8;
                b.splice(at..at, std::iter::repeat(fill).take(len));
            }
            (b, "insertion/deletion")
        }
        5 | 6 => (edit_header(bytes, |o| header_edit(rng, o)), "header edit, checksum recomputed"),
        7 if b.len() > start => {
            // Data bytes changed, checksum recomputed: values may become NaN, inf, negative.
            let mut b = b;
            for _ in 0..1 + rng.below(16) {
                let at = start + rng.below(b.len() - start);
                b[at] ^= 1 << rng.below(8);
            }
            (edit_header(&b, |_| {}), "data flips, checksum recomputed")
        }
        _ => {
            // The length word changed by a small amount or set to a random value.
            let n = u64::from_le_bytes(b[..8].try_into().unwrap());
            let v = match rng.below(3) {
                0 => n.wrapping_add(rng.below(16) as u64).wrapping_sub(8),
                1 => rng.next(),
                _ => rng.next() % (b.len() as u64 + 16),
            };
            b[..8].copy_from_slice(&v.to_le_bytes());
            (b, "length word")
        }
    }
}

/// A random edit of a header's JSON: metadata values, keys, dtypes, shapes, offsets, names.
fn header_edit(rng: &mut Rng, o: &mut Map<String, Value>) {
    let tensors: Vec<String> = o.keys().filter(|k| *k != "__metadata__").cloned().collect();
    if tensors.is_empty() {
        return;
    }
    let t = rng.pick(&tensors).clone();
    match rng.below(9) {
        0 | 1 => {
            let meta = o.get_mut("__metadata__").unwrap().as_object_mut().unwrap();
            let keys: Vec<String> = meta.keys().filter(|k| *k != "checksum").cloned().collect();
            if let Some(k) = keys.get(rng.below(keys.len().max(1))) {
                meta.insert(k.clone(), json!(*rng.pick(META_VALUES)));
            }
        }
        2 => {
            let meta = o.get_mut("__metadata__").unwrap().as_object_mut().unwrap();
            let keys: Vec<String> = meta.keys().filter(|k| *k != "checksum").cloned().collect();
            if rng.below(2) == 0 && !keys.is_empty() {
                meta.remove(rng.pick(&keys));
            } else {
                meta.insert(format!("extra{}", rng.below(4)), json!(*rng.pick(META_VALUES)));
            }
        }
        3 => o.get_mut(&t).unwrap()["dtype"] = json!(*rng.pick(DTYPES)),
        4 => {
            let e = o.get_mut(&t).unwrap();
            let mut shape: Vec<u64> = e["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap()).collect();
            match rng.below(5) {
                0 => shape.reverse(),
                1 => shape.push(1 + rng.below(3) as u64),
                2 => {
                    shape.pop();
                }
                3 if !shape.is_empty() => {
                    let i = rng.below(shape.len());
                    shape[i] = [0, 1, shape[i] + 1, shape[i].saturating_sub(1), u64::MAX, 1 << 32][rng.below(6)];
                }
                _ => shape = vec![shape.iter().product()],
            }
            e["shape"] = json!(shape);
        }
        5 => {
            let e = o.get_mut(&t).unwrap();
            let (a, b) = (e["data_offsets"][0].as_u64().unwrap(), e["data_offsets"][1].as_u64().unwrap());
            let d = [1u64, 2, 4, 8, 1 << 20, u64::MAX / 2][rng.below(6)];
            e["data_offsets"] = match rng.below(5) {
                0 => json!([a.wrapping_add(d), b.wrapping_add(d)]),
                1 => json!([a.wrapping_sub(d), b.wrapping_sub(d)]),
                2 => json!([b, a]),
                3 => json!([a, b.wrapping_add(d)]),
                _ => json!([0, b - a]),
            };
        }
        6 => {
            // Another tensor's range (overlap) or a swap of two ranges.
            let u = rng.pick(&tensors).clone();
            let (ru, rt) = (o[&u]["data_offsets"].clone(), o[&t]["data_offsets"].clone());
            o.get_mut(&t).unwrap()["data_offsets"] = ru;
            if rng.below(2) == 0 {
                o.get_mut(&u).unwrap()["data_offsets"] = rt;
            }
        }
        7 => {
            // Renamed, removed or duplicated tensor.
            let e = o.remove(&t).unwrap();
            match rng.below(3) {
                0 => {
                    o.insert(format!("{t}x"), e);
                }
                1 => {}
                _ => {
                    o.insert(t.clone(), e.clone());
                    o.insert(format!("{t}.copy"), e);
                }
            }
        }
        _ => {
            // Two tensors' names swapped (both exist: shapes are checked against names).
            let u = rng.pick(&tensors).clone();
            let (eu, et) = (o.remove(&u).unwrap(), o.remove(&t));
            o.insert(t.clone(), eu);
            if let Some(et) = et {
                o.insert(u, et);
            }
        }
    }
}

/// Mutants of each test file from memory (every one), and some through gran_model_load as
/// files (the same status both ways); every outcome OK or FORMAT, every OK model draws.
fn fuzz() -> Result<String, String> {
    let tries: usize = std::env::var("GRAN_FUZZ_TRIES").ok().and_then(|v| v.parse().ok()).unwrap_or(1500);
    let seed: u64 = std::env::var("GRAN_FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(20240611);
    let mut rng = Rng(seed);
    let dir = scratch("fuzz");
    let files: Vec<Vec<u8>> = FILES.iter().map(|f| test_file(f)).collect();
    let (mut total, mut ok, mut format, mut io, mut via_c) = (0usize, 0usize, 0usize, 0usize, 0usize);
    let mut by_kind: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let started = Instant::now();
    for (fi, f) in FILES.iter().enumerate() {
        for i in 0..tries {
            let other = &files[(fi + 1 + rng.below(2)) % 3];
            let (mut b, mut kind) = mutate(&mut rng, &files[fi], other);
            // Now and then a second mutation on top of the first.
            if rng.below(4) == 0 && b.len() > 8 + 2 && header_ok(&b) {
                let (b2, _) = mutate(&mut rng, &b, other);
                (b, kind) = (b2, "two mutations");
            }
            total += 1;
            let what = format!("{f} mutant {i} ({kind})");
            let r = Model::from_bytes(&b);
            let (s, msg) = status_of(&r);
            let e = by_kind.entry(kind).or_default();
            match s {
                GRAN_STATUS_OK => {
                    ok += 1;
                    e.0 += 1;
                    draw_checked(r.as_ref().unwrap(), 2, &what)?;
                }
                GRAN_STATUS_FORMAT => {
                    format += 1;
                    e.1 += 1;
                }
                _ => {
                    let path = dir.join("failing.safetensors");
                    std::fs::write(&path, &b).ok();
                    return Err(format!("{what}: {} ({msg}); the file is at {}", name(s), path.display()));
                }
            }
            drop(r);
            // Every 8th mutant also as a file through the C function: the same status.
            if i % 8 == 0 {
                via_c += 1;
                let path = dir.join(format!("m{fi}.safetensors"));
                std::fs::write(&path, &b).map_err(|e| e.to_string())?;
                let (sc, m) = c_load(&path);
                if sc == GRAN_STATUS_IO {
                    io += 1;
                }
                ensure(sc == s, || {
                    format!("{what}: {} from memory, {} as a file ({})", name(s), name(sc), last_error())
                })?;
                if m != 0 {
                    let mut px = vec![0u8; 2 * 784];
                    // SAFETY: px holds 2 images of the test models' size.
                    let sp = unsafe { gran_sample(m, 5, 2, 0, px.as_mut_ptr().cast(), px.len()) };
                    expect(sp, GRAN_STATUS_OK, &format!("{what}: sampling"))?;
                    expect(gran_model_free(m), GRAN_STATUS_OK, "free")?;
                }
            }
        }
    }
    std::fs::remove_dir_all(&dir).ok();
    let kinds: Vec<String> = by_kind.iter().map(|(k, (o, f))| format!("{k} {o}/{f}")).collect();
    Ok(format!(
        "fuzz: {total} files tried ({tries} mutants x 3, seed {seed}), OK {ok}, FORMAT {format}, IO {io}, \
         {via_c} also through gran_model_load, in {:.1} s; by mutation (OK/FORMAT): {}",
        started.elapsed().as_secs_f64(),
        kinds.join(", ")
    ))
}

/// Whether `b` still has a header a second mutation can edit: JSON with string metadata and
/// tensor entries of a dtype, a shape and two offsets, and data after it.
fn header_ok(b: &[u8]) -> bool {
    let n = u64::from_le_bytes(b[..8].try_into().unwrap());
    if n >= (b.len() - 8) as u64 {
        return false;
    }
    let Ok(Value::Object(o)) = serde_json::from_slice::<Value>(&b[8..8 + n as usize]) else { return false };
    let u64s = |v: Option<&Value>| v.and_then(Value::as_array).is_some_and(|a| a.iter().all(|d| d.as_u64().is_some()));
    o.len() > 1
        && o.iter().all(|(k, v)| {
            if k == "__metadata__" {
                v.as_object().is_some_and(|m| m.len() > 1 && m.values().all(Value::is_string))
            } else {
                v.get("dtype").is_some_and(Value::is_string)
                    && u64s(v.get("shape"))
                    && u64s(v.get("data_offsets"))
                    && v["data_offsets"].as_array().unwrap().len() == 2
            }
        })
        && o.contains_key("__metadata__")
}
