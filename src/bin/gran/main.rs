//! `gran`: the command-line tool. Trains, samples, compares (GAM) and evaluates GRAN models and
//! says what a file holds, on the Rust core of the library (not the C API: the core gives typed
//! errors, `Model` values that a Ctrl-C handler can share, and tensors that go straight to
//! PNG files, with no handle registry or status codes to translate back).
//!
//! One module per subcommand (`train`, `sample` with `steps`, `gam`, `eval`, `info`, `export`,
//! `walk`, `pack`), and the concepts they share: `opts` (device, precision, data options), `data` (finding and loading a
//! dataset), `progress` (bar, plain lines or JSON lines), `term` (stderr around the bar),
//! `output` (results as text or JSON, output files) and `exit` (exit codes, one-line errors).

mod data;
mod eval;
mod exit;
mod export;
mod gam;
mod info;
mod opts;
mod output;
mod pack;
mod progress;
mod sample;
mod term;
mod train;
mod walk;

use clap::{Parser, Subcommand};
use output::Out;

const ABOUT: &str = "Train, sample, compare and evaluate GRAN models (generative recurrent adversarial networks)";

#[derive(Parser)]
#[command(
    name = "gran",
    version,
    about = ABOUT,
    long_about = None,
    after_help = exit::HELP,
    arg_required_else_help = true,
    propagate_version = true
)]
struct Cli {
    /// Print each result as one JSON object on stdout (training progress too, one object per line)
    #[arg(long, global = true)]
    json: bool,
    /// No progress output (results and errors are still printed)
    #[arg(short, long, global = true)]
    quiet: bool,
    /// CPU threads libtorch may use [default: libtorch's choice]
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    threads: Option<u32>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model on IDX, CIFAR-10 or image-folder data (or resume a checkpoint)
    Train(train::Args),
    /// Draw images from a model: a PNG grid, or one PNG per image
    Sample(sample::SampleArgs),
    /// The step-by-step picture: rows are images, columns the canvas after each drawing step
    /// (--animate: the drawing as a GIF)
    Steps(sample::StepsArgs),
    /// A latent walk as a looping GIF: images turning into the images of another seed
    Walk(walk::Args),
    /// GAM: two models judge each other's samples and the held-out data
    Gam(gam::Args),
    /// Score models with a classifier trained on labelled data (Frechet distance, classifier
    /// score, classes, copy check)
    Eval(eval::Args),
    /// Say what a file or folder holds: a checkpoint's model, a generator export, or a dataset
    Info(info::Args),
    /// Write a checkpoint's generator to a smaller file to ship (sampling only)
    Export(export::Args),
    /// Convert any dataset gran reads (image folder or zip, IDX, CIFAR-10) to one .npy array
    Pack(pack::Args),
}

fn main() {
    exit::quiet_on_closed_pipe();
    exit::one_line_panics();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => exit::usage(e),
    };
    let out = Out { json: cli.json, quiet: cli.quiet };
    if let Some(n) = cli.threads {
        tch::set_num_threads(n as i32);
    }
    progress::install_log_sink();
    let (name, result) = match &cli.command {
        Command::Train(a) => ("train", train::run(a, &out)),
        Command::Sample(a) => ("sample", sample::run_sample(a, &out)),
        Command::Steps(a) => ("steps", sample::run_steps(a, &out)),
        Command::Walk(a) => ("walk", walk::run(a, &out)),
        Command::Gam(a) => ("gam", gam::run(a, &out)),
        Command::Eval(a) => ("eval", eval::run(a, &out)),
        Command::Info(a) => ("info", info::run(a, &out)),
        Command::Export(a) => ("export", export::run(a, &out)),
        Command::Pack(a) => ("pack", pack::run(a, &out)),
    };
    match result {
        Ok(()) => {}
        Err(e) => exit::fail(name, &e, &out),
    }
}
