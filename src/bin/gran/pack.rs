//! `gran pack`: any dataset gran reads, as one numpy `.npy` array of uint8 images (and a
//! `.labels.npy` beside it), the packed form that loads fastest and that numpy reads.

use crate::data::{self, Split};
use crate::opts::{DataArgs, Format, ImageFileArgs};
use crate::output::{make_parent, Out};
use gran::data::npy::{labels_path, write_labels, NpyWriter};
use gran::data::{FolderLabels, ImageSource};
use gran::{Error, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(clap::Args)]
#[command(args_override_self = true)]
pub struct Args {
    /// Where the images are: a folder or .zip of PNG/JPEG files (StyleGAN2-ADA's layout), a
    /// folder of MNIST IDX files or one IDX file, CIFAR-10, or a .npy array
    #[arg(value_name = "SRC")]
    pub src: PathBuf,
    /// The .npy file to write (labels, when the source has them, go to NAME.labels.npy)
    #[arg(short, long, value_name = "DST.npy")]
    pub out: PathBuf,
    /// What SRC holds
    #[arg(long, value_enum, default_value_t = Format::Auto)]
    pub format: Format,
    #[command(flatten)]
    pub files: ImageFileArgs,
    /// Pack only the first N images
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub limit: Option<u64>,
}

fn bar(out: &Out, n: usize) -> ProgressBar {
    if out.quiet || out.json || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(n as u64), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "packing [{elapsed_precise}] {wide_bar:.cyan/blue} {pos}/{len} images  {per_sec}  ETA {eta}",
        )
        .expect("a valid template"),
    );
    bar
}

pub fn run(a: &Args, out: &Out) -> Result<()> {
    if a.out.extension().map_or(true, |e| !e.eq_ignore_ascii_case("npy")) {
        return Err(Error::invalid(format!("{}: the packed file's name ends in .npy", a.out.display())));
    }
    let format = match a.format {
        Format::Auto => data::detect(&a.src)?,
        f => f,
    };
    make_parent(&a.out)?;
    let (count, shape, labels_from) = match (format, data::records(&a.src, format)?) {
        (Format::Images, _) => pack_files(a, out)?,
        (_, Some(records)) => pack_records(a, records, out)?,
        _ => pack_loaded(a, format, out)?,
    };
    let (h, w, c) = shape;
    let labels = labels_from.is_some().then(|| labels_path(&a.out).display().to_string());
    let value = serde_json::json!({
        "source": a.src.display().to_string(), "file": a.out.display().to_string(), "count": count,
        "height": h, "width": w, "channels": c, "labels": labels, "labels_from": labels_from,
    });
    out.result("pack", value, || {
        let mut text = format!("wrote {} ({count} images of {h}x{w}x{c}, uint8, (N, H, W, C))", a.out.display());
        if let (Some(l), Some(from)) = (&labels, labels_from) {
            text += &format!("\nwrote {l} (labels from {from})");
        }
        text
    });
    Ok(())
}

/// What a packing wrote: the images, their (height, width, channels), and the labels' source
/// when there were labels.
type Packed = (usize, (u32, u32, u32), Option<&'static str>);

/// Image files, one at a time: never more than one decoded image in memory.
fn pack_files(a: &Args, out: &Out) -> Result<Packed> {
    let channels = a.files.channels.unwrap_or(3);
    let labels = if a.files.class_folders { FolderLabels::Classes } else { FolderLabels::Auto };
    let mut source = ImageSource::open(&a.src, labels)?;
    let n = a.limit.map_or(source.len(), |l| source.len().min(l as usize));
    let side = match a.files.image_size {
        Some(s) => s,
        None => {
            let first = source.read(0)?;
            let (w, h) = image::load_from_memory(&first)
                .map(|i| (i.width(), i.height()))
                .map_err(|e| Error::format(format!("{}: cannot decode the image: {e}", source.name(0))))?;
            if w != h && !a.files.center_crop {
                return Err(Error::invalid(format!(
                    "{} is {w}x{h}: give --image-size (and --center-crop to keep the aspect ratio)",
                    source.name(0)
                )));
            }
            w.min(h)
        }
    };
    let shape = data::image_shape(&a.files, side, channels);
    shape.check()?;
    out.note(&format!("{}: {} images ({n} packed) -> {side}x{side}x{channels}", a.src.display(), source.len()));
    let mut writer = NpyWriter::create(&a.out, n, side, side, channels)?;
    let progress = bar(out, n);
    for i in 0..n {
        let bytes = source.read(i)?;
        writer.push(&gran::data::images::decode(&bytes, source.name(i), shape)?)?;
        progress.inc(1);
    }
    progress.finish_and_clear();
    let from = source.labels_from();
    if let Some(l) = source.labels() {
        write_labels(&labels_path(&a.out), &l[..n])?;
    }
    writer.finish()?;
    Ok((n, (side, side, channels), from))
}

/// IDX and CIFAR-10 files: read front to back and written a chunk at a time, in their own
/// size; never more than one chunk of images in memory (and the labels, a byte per image).
fn pack_records(a: &Args, mut r: Box<dyn gran::data::RecordReader>, out: &Out) -> Result<Packed> {
    let (h, w, c) = r.shape();
    check_own_size(a, (h, w, c))?;
    let n = a.limit.map_or(r.count(), |l| r.count().min(l as usize));
    out.note(&format!("{}: {} images of {h}x{w}x{c} ({n} packed)", a.src.display(), r.count()));
    let mut writer = NpyWriter::create(&a.out, n, h, w, c)?;
    let progress = bar(out, n);
    let (per, plane) = ((h * w * c) as usize, (h * w) as usize);
    let (mut chw, mut hwc, mut labels) = (Vec::new(), vec![0u8; per], Vec::new());
    const CHUNK: usize = 1024;
    let mut done = 0;
    while done < n {
        let k = CHUNK.min(n - done);
        chw.clear();
        r.read(k, &mut chw, &mut labels)?;
        for image in chw.chunks_exact(per) {
            // channels x height x width -> height x width x channels
            for (p, px) in hwc.chunks_exact_mut(c as usize).enumerate() {
                for (ch, v) in px.iter_mut().enumerate() {
                    *v = image[ch * plane + p];
                }
            }
            writer.push(&hwc)?;
        }
        progress.inc(k as u64);
        done += k;
    }
    progress.finish_and_clear();
    if n == r.count() {
        r.finish()?;
    }
    let from = r.labelled().then_some("the source's labels");
    if r.labelled() {
        write_labels(&labels_path(&a.out), &labels)?;
    }
    writer.finish()?;
    Ok((n, (h, w, c), from))
}

/// --image-size and --channels resize image files only: refused for a source of another size.
fn check_own_size(a: &Args, (h, w, c): (u32, u32, u32)) -> Result<()> {
    if a.files.image_size.is_some_and(|s| s != h || s != w) || a.files.channels.is_some_and(|x| x != c) {
        return Err(Error::invalid(format!(
            "{} holds {h}x{w}x{c} images: --image-size and --channels resize image files only",
            a.src.display()
        )));
    }
    Ok(())
}

/// A `.npy` source, repacked a chunk at a time (it is opened as training streams it).
fn pack_loaded(a: &Args, format: Format, out: &Out) -> Result<Packed> {
    let args = DataArgs {
        data: a.src.clone(),
        format,
        files: Default::default(),
        stream: crate::opts::Stream::Auto,
        limit: a.limit,
    };
    let loaded = data::load(&args, Split::Train, (32, 32, 3))?;
    let d = &loaded.data;
    let (h, w, c) = (d.height(), d.width(), d.channels());
    check_own_size(a, (h, w, c))?;
    out.note(&format!("{}: {}", loaded.source, data::describe(d)));
    let mut writer = NpyWriter::create(&a.out, d.count(), h, w, c)?;
    let progress = bar(out, d.count());
    // [N, C, H, W] -> [N, H, W, C], a chunk at a time.
    const CHUNK: usize = 1024;
    let mut start = 0;
    while start < d.count() {
        let k = CHUNK.min(d.count() - start);
        let hwc = d.stored_slice(start, k)?.f_permute([0, 2, 3, 1])?;
        let chunk = Vec::<u8>::try_from(&hwc.f_contiguous()?.f_view([-1])?)?;
        for image in chunk.chunks_exact((h * w * c) as usize) {
            writer.push(image)?;
        }
        progress.inc(k as u64);
        start += k;
    }
    progress.finish_and_clear();
    let from = d.labels().map(|_| "the source's labels");
    if let Some(l) = d.labels() {
        write_labels(&labels_path(&a.out), l)?;
    }
    writer.finish()?;
    Ok((d.count(), (h, w, c), from))
}
