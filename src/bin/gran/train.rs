//! `gran train`: a new model, or one resumed from a checkpoint, trained on a dataset; the
//! checkpoint is written at the end, every --checkpoint-every steps, and when Ctrl-C stops the
//! run at a step boundary.

use crate::data::{self, Split};
use crate::opts::{parse_device, AugmentArg, DataArgs, PrecisionArg, ScheduleArg};
use crate::output::{config_json, make_parent, Out};
use crate::progress::{self, Reporter};
use crate::term;
use gran::{checkpoint, DeviceSpec, Error, ErrorKind, Model, ModelConfig, Progress, Result, TrainConfig};
use parking_lot::Mutex;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

const DEFAULT_OUT: &str = "gran.safetensors";

/// Options that shape a new model: refused together with --resume (the checkpoint fixes them).
const MODEL_OPTIONS: [&str; 9] = [
    "drawing_steps",
    "z_dim",
    "hidden_dim",
    "width_scale",
    "plain_relu",
    "upsampling",
    "init_seed",
    "conditional",
    "classes",
];

#[derive(clap::Args)]
#[command(args_override_self = true)]
pub struct Args {
    #[command(flatten)]
    pub data: DataArgs,

    /// The checkpoint to write: at the end, every --checkpoint-every steps, and on Ctrl-C
    /// [default: gran.safetensors, or the --resume file]
    #[arg(short, long, value_name = "FILE", help_heading = "Checkpoint")]
    pub out: Option<PathBuf>,
    /// Continue training the model of this checkpoint (its configuration, weights, optimizer
    /// state and step counter); --iterations more steps
    #[arg(long, value_name = "FILE", conflicts_with_all = MODEL_OPTIONS, help_heading = "Checkpoint")]
    pub resume: Option<PathBuf>,
    /// Continue from the checkpoint --out names when it exists (it must hold the model the
    /// options describe), else start a new model. --iterations (or --epochs) then counts from
    /// the run's first step, so the same command run again ends at the same step: what a
    /// restarted group needs (torchrun --max-restarts)
    #[arg(long, conflicts_with = "resume", help_heading = "Checkpoint")]
    pub resume_if_exists: bool,

    /// Drawing steps T (1: the single-step DCGAN-style baseline)
    #[arg(short = 'T', long = "drawing-steps", value_name = "T", default_value_t = 3, help_heading = "Model")]
    pub drawing_steps: u32,
    /// Latent size
    #[arg(long, value_name = "N", default_value_t = 100, help_heading = "Model")]
    pub z_dim: u32,
    /// Size of the generator's hidden codes h_z and h_c
    #[arg(long, value_name = "N", default_value_t = 100, help_heading = "Model")]
    pub hidden_dim: u32,
    /// Multiplies the paper's channel counts, in (0, 8]; 0.25 trains in minutes on a CPU
    #[arg(long, value_name = "S", default_value_t = 1.0, help_heading = "Model")]
    pub width_scale: f32,
    /// Plain ReLU in the discriminator (the authors' code) instead of leaky ReLU
    #[arg(long, help_heading = "Model")]
    pub plain_relu: bool,
    /// How the generator doubles its feature maps: transposed (5x5 transposed convolutions, the
    /// paper's) or resize (nearest-neighbour upsampling and a 5x5 convolution: no checkerboard)
    #[arg(long, value_name = "KIND", default_value = "transposed", help_heading = "Model")]
    pub upsampling: gran::Upsampling,
    /// Seed of the initial weights [default: --seed]
    #[arg(long, value_name = "N", help_heading = "Model")]
    pub init_seed: Option<u64>,
    /// A class-conditional model: it learns to draw each class of the data's labels (IDX or
    /// CIFAR labels, dataset.json, --class-folders, NAME.labels.npy), and samples by class
    /// (gran sample --class K, --per-class). Its classes: the largest label + 1
    #[arg(long, help_heading = "Model")]
    pub conditional: bool,
    /// The number of classes of a conditional model (implies --conditional) [default: the
    /// largest label + 1]
    #[arg(long, value_name = "N", help_heading = "Model")]
    pub classes: Option<u32>,
    /// Where the model trains: auto (CUDA 0 when present, else the CPU), cpu, cuda or cuda:N
    /// [default: auto; with --resume: where it was saved, if present]
    #[arg(long, value_name = "DEVICE", value_parser = parse_device, help_heading = "Model")]
    pub device: Option<DeviceSpec>,

    /// Training steps to run (one discriminator and one generator update each)
    #[arg(short = 'n', long, value_name = "N", default_value_t = 2000, help_heading = "Training",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub iterations: u64,
    /// Passes over the data instead of --iterations
    #[arg(long, value_name = "N", conflicts_with = "iterations", help_heading = "Training",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub epochs: Option<u32>,
    /// Minibatch size
    #[arg(short, long, value_name = "N", default_value_t = 64, help_heading = "Training")]
    pub batch_size: u32,
    /// Adam learning rate of the generator
    #[arg(long, value_name = "LR", default_value_t = gran::train::DEFAULT_LR_G, help_heading = "Training")]
    pub lr_g: f64,
    /// Adam learning rate of the discriminator
    #[arg(long, value_name = "LR", default_value_t = gran::train::DEFAULT_LR_D, help_heading = "Training")]
    pub lr_d: f64,
    /// L2 weight decay on the discriminator's linear layers
    #[arg(long, value_name = "W", default_value_t = 0.0, help_heading = "Training")]
    pub d_weight_decay: f64,
    /// Seed of the minibatch order and latents (and of the initial weights) [default: 0; with
    /// --resume: the checkpoint's seed, so that the run continues as if never stopped]
    #[arg(short, long, value_name = "N", help_heading = "Training")]
    pub seed: Option<u64>,
    /// Precision of the training passes
    #[arg(long, value_enum, default_value_t = PrecisionArg::Fp32, help_heading = "Training")]
    pub precision: PrecisionArg,
    /// Decay of the averaged generator that sampling uses, in [0, 1) (0: no averaging)
    #[arg(long, value_name = "D", default_value_t = gran::train::DEFAULT_EMA_DECAY, help_heading = "Training")]
    pub ema_decay: f64,
    /// The step from which the average decays (before it, it copies the raw generator)
    #[arg(long, value_name = "N", default_value_t = gran::train::DEFAULT_EMA_START, help_heading = "Training")]
    pub ema_start: u64,
    /// How the learning rates change over the run
    #[arg(long, value_enum, default_value_t = ScheduleArg::Constant, help_heading = "Training")]
    pub lr_schedule: ScheduleArg,
    /// On a CUDA device, capture the training step as a CUDA graph and replay it
    #[arg(long, help_heading = "Training")]
    pub cuda_graph: bool,
    /// Recompute each drawing step in the backward pass instead of keeping its activations:
    /// training memory flat in T, for one more forward pass of the generator per step
    #[arg(long, help_heading = "Training")]
    pub recompute: bool,
    /// Augmentation of every image the discriminator sees (translation, cutout, colour): keeps
    /// it from memorising a small dataset
    #[arg(long, value_enum, default_value_t = AugmentArg::Ada, help_heading = "Augmentation")]
    pub augment: AugmentArg,
    /// The probability of each augmentation with --augment fixed; the lowest one --augment ada
    /// tunes to
    #[arg(long, value_name = "P", default_value_t = gran::train::DEFAULT_AUGMENT_FLOOR, help_heading = "Augmentation")]
    pub augment_p: f64,
    /// --augment ada: the mean sign of D's outputs on real images that p is tuned to hold
    #[arg(long, value_name = "X", default_value_t = gran::train::DEFAULT_AUGMENT_TARGET, help_heading = "Augmentation")]
    pub augment_target: f64,
    /// --augment ada: images over which p may move from 0 to 1
    #[arg(long, value_name = "N", default_value_t = gran::train::DEFAULT_AUGMENT_SPEED, help_heading = "Augmentation")]
    pub augment_speed: f64,
    /// Horizontal flips among the augmentations (not for digits or text)
    #[arg(long, help_heading = "Augmentation")]
    pub flip: bool,
    /// Weight of the R1 gradient penalty on real images (0: off) [default: 0 for 28x28
    /// images, 1 for 32x32, 10 for 64x64 and larger]
    #[arg(long, value_name = "G", help_heading = "Augmentation")]
    pub r1_gamma: Option<f64>,
    /// Steps between R1 penalties (lazy regularisation)
    #[arg(long, value_name = "N", default_value_t = gran::train::DEFAULT_R1_EVERY, help_heading = "Augmentation")]
    pub r1_every: u32,
    /// Weight of a penalty on the generator's canvas beyond +-5 before the sigmoid, which keeps
    /// pixels from saturating at 0 or 255 and no longer learning (0: off) [default: 0 for 28x28
    /// images, 1 for 32x32 and larger]
    #[arg(long, value_name = "W", help_heading = "Augmentation")]
    pub canvas_penalty: Option<f64>,
    /// Train data-parallel with the processes torchrun starts (RANK, WORLD_SIZE, MASTER_ADDR,
    /// MASTER_PORT): --batch-size is the global batch; rank 0 prints and writes the checkpoint
    #[arg(long, help_heading = "Distributed")]
    pub distributed: bool,
    /// The longest a rendezvous or a step may wait for the other processes
    #[arg(long, value_name = "SECONDS", default_value_t = 300, help_heading = "Distributed")]
    pub dist_timeout: u64,
    /// Steps between progress lines (when stderr is not a terminal, and with --json)
    #[arg(long, value_name = "N", default_value_t = 100, help_heading = "Training")]
    pub report_every: u64,
    /// Steps between checkpoints (0: only at the end and on Ctrl-C)
    #[arg(long, value_name = "N", default_value_t = 0, help_heading = "Training")]
    pub checkpoint_every: u64,
}

/// --resume-if-exists: `found`, the configuration of the checkpoint at `path`, must be the one
/// the options describe (`wanted`); the image size, from the data, and the device aside.
fn same_model(found: &ModelConfig, wanted: &ModelConfig, path: &Path) -> Result<()> {
    let shape = |c: &ModelConfig| {
        (
            c.height,
            c.width,
            c.channels,
            c.drawing_steps,
            c.z_dim,
            c.hidden_dim,
            c.width_scale,
            c.leaky_relu,
            c.seed,
            c.classes,
            c.upsampling,
        )
    };
    if shape(found) != shape(wanted) {
        return Err(Error::invalid(format!(
            "{} holds another model than the options describe (T={} z {} hidden {} width scale {} seed {} classes {} \
             upsampling {}, against T={} z {} hidden {} width scale {} seed {} classes {} upsampling {}): give its \
             options, another --out, or --resume",
            path.display(),
            found.drawing_steps,
            found.z_dim,
            found.hidden_dim,
            found.width_scale,
            found.seed,
            found.classes,
            found.upsampling,
            wanted.drawing_steps,
            wanted.z_dim,
            wanted.hidden_dim,
            wanted.width_scale,
            wanted.seed,
            wanted.classes,
            wanted.upsampling
        )));
    }
    Ok(())
}

/// The classes of the model the options describe: 0 unless --conditional or --classes; the
/// largest label + 1 unless --classes says.
fn classes_of(a: &Args, data: &gran::Dataset) -> Result<u32> {
    if !a.conditional && a.classes.is_none() {
        return Ok(0);
    }
    let Some(labels) = data.labels() else {
        return Err(Error::invalid(
            "--conditional needs labelled data (IDX or CIFAR labels, dataset.json, --class-folders, NAME.labels.npy), \
             and this dataset has none",
        ));
    };
    Ok(a.classes.unwrap_or_else(|| labels.iter().max().map_or(0, |&k| u32::from(k) + 1).max(2)))
}

/// Set by the first Ctrl-C; the model to stop.
static STOP: AtomicBool = AtomicBool::new(false);
static TRAINING: Mutex<Option<Arc<Model>>> = Mutex::new(None);

/// Ctrl-C (SIGINT), SIGTERM or SIGHUP asks the run to stop before its next step and write its
/// checkpoint; a second one exits at once. SIGTERM is how torchrun stops the other processes
/// of a group when one fails, and how job schedulers end a job.
fn install_ctrl_c() -> Result<()> {
    ctrlc::set_handler(|| {
        if STOP.swap(true, Ordering::SeqCst) {
            term::clear();
            eprintln!("gran train: interrupted again: exiting without writing the checkpoint");
            std::process::exit(crate::exit::INTERRUPTED);
        }
        term::println("gran train: interrupted: stopping at the end of this step (interrupt again to quit at once)");
        if let Some(m) = TRAINING.lock().as_ref() {
            m.cancel();
        }
    })
    .map_err(|e| Error::internal(format!("cannot install the interrupt handler: {e}")))
}

/// `gran train`: joins the group (with --distributed), loads or builds the model, trains it and
/// reports; rank 0 alone speaks and writes the checkpoint.
pub fn run(a: &Args, out: &Out) -> Result<()> {
    let group = join_group(a)?;
    let leads = gran::dist::leads(group.as_deref());
    let quiet = Out { json: out.json, quiet: true };
    let out = if leads { out } else { &quiet };
    if let Some(g) = &group {
        out.note(&format!(
            "distributed: {} processes ({:?}), global batch {}",
            g.world_size(),
            g.backend(),
            a.batch_size
        ));
    }
    let device = device_of(a, group.as_deref());
    let path = a.out.clone().or_else(|| a.resume.clone()).unwrap_or_else(|| DEFAULT_OUT.into());
    let resume = match &a.resume {
        Some(p) => Some(p.clone()),
        None => (a.resume_if_exists && path.exists()).then(|| path.clone()),
    };
    let resumed = match &resume {
        Some(path) => Some(Arc::new(checkpoint::load(path, device)?)),
        None => None,
    };
    // An image folder is resized to the model's size (a resumed model's, else --image-size).
    let shape = resumed.as_ref().map_or((32, 32, 3), |m| (m.config().height, m.config().width, m.config().channels));
    let loaded = data::load(&a.data, Split::Train, shape)?;
    let data = &loaded.data;
    out.note(&format!("data: {} ({})", data::describe(data), loaded.source));

    let seed = a.seed.or(resumed.as_ref().map(|m| m.config().seed)).unwrap_or(0);
    let model = model_of(a, resumed, &described(a, data, device, seed)?, &path)?;
    out.note(&describe_model(&model));
    make_parent(&path)?;

    let (iterations, epochs) = remaining(a, data.count(), model.step());
    if iterations == 0 && epochs == 0 {
        let value = serde_json::json!({
            "checkpoint": path.display().to_string(), "first_step": model.step(), "step": model.step(),
            "trained": false, "config": config_json(model.config()),
        });
        if leads {
            out.result("train", value, || {
                format!("{} is at step {}: the run is complete, nothing to train", path.display(), model.step())
            });
        }
        return Ok(());
    }
    let cfg = train_config(a, iterations, epochs, seed, &path, group.as_ref())?;
    out.note(&settings_line(&cfg, model.config().height));
    let run = Run { a, out, model, path, group };
    let first = run.model.step();
    let last = run.train(data, &cfg)?;
    if leads {
        run.report(first, &last, data.count());
    }
    Ok(())
}

/// With --distributed, joins the group: every rank waits here for the others.
fn join_group(a: &Args) -> Result<Option<Arc<gran::dist::ProcessGroup>>> {
    if !a.distributed {
        return Ok(None);
    }
    let s =
        gran::dist::GroupSettings::from_env(gran::dist::Backend::Auto, std::time::Duration::from_secs(a.dist_timeout))?;
    Ok(Some(Arc::new(gran::dist::ProcessGroup::new(&s)?)))
}

/// Where the model trains: under NCCL each process on the GPU of its LOCAL_RANK unless told (a
/// resumed model as a new one), else --device.
fn device_of(a: &Args, group: Option<&gran::dist::ProcessGroup>) -> Option<DeviceSpec> {
    match (group, a.device) {
        (Some(g), None | Some(DeviceSpec::Auto)) if g.backend() == gran::dist::Backend::Nccl => {
            Some(DeviceSpec::Cuda(g.local_rank()))
        }
        _ => a.device,
    }
}

/// The model the options describe, its image size from the data.
fn described(a: &Args, data: &gran::Dataset, device: Option<DeviceSpec>, seed: u64) -> Result<ModelConfig> {
    Ok(ModelConfig {
        height: data.height(),
        width: data.width(),
        channels: data.channels(),
        drawing_steps: a.drawing_steps,
        z_dim: a.z_dim,
        hidden_dim: a.hidden_dim,
        width_scale: a.width_scale,
        leaky_relu: !a.plain_relu,
        device: device.unwrap_or(DeviceSpec::Auto),
        seed: a.init_seed.unwrap_or(seed),
        classes: classes_of(a, data)?,
        upsampling: a.upsampling,
    })
}

/// The resumed model (with --resume-if-exists, only when it is the one `described`), else a new
/// one as `described`.
fn model_of(a: &Args, resumed: Option<Arc<Model>>, described: &ModelConfig, path: &Path) -> Result<Arc<Model>> {
    match resumed {
        Some(m) => {
            if a.resume_if_exists {
                same_model(m.config(), described, path)?;
            }
            Ok(m)
        }
        None => {
            described
                .validate()
                .map_err(|e| Error::invalid(format!("{} (the model takes its image size from the data)", e.message)))?;
            Ok(Arc::new(Model::new(described)?))
        }
    }
}

/// The progress note that names the model.
fn describe_model(model: &Model) -> String {
    let c = model.config();
    let (pg, pd) = model.parameter_counts();
    format!(
        "model: T={} {}x{}x{} width scale {}{} on {}, {} + {} parameters (G + D), at step {}",
        c.drawing_steps,
        c.height,
        c.width,
        c.channels,
        c.width_scale,
        if c.classes > 0 { format!(", {} classes", c.classes) } else { String::new() },
        c.device,
        pg,
        pd,
        model.step()
    )
}

/// The run's (iterations, epochs) from a model at step `step`: --iterations or --epochs more
/// steps, or with --resume-if-exists up to the step they name counted from step 0 (so the same
/// command run again ends at the same step).
fn remaining(a: &Args, images: usize, step: u64) -> (u64, u32) {
    match (a.resume_if_exists, a.epochs) {
        (false, Some(e)) => (0, e),
        (false, None) => (a.iterations, 0),
        (true, e) => {
            let per_epoch = (images / a.batch_size.max(1) as usize) as u64;
            let end = e.map_or(a.iterations, |e| u64::from(e).saturating_mul(per_epoch));
            (end.saturating_sub(step), 0)
        }
    }
}

/// The trainer's settings from the options, checked.
fn train_config(
    a: &Args,
    iterations: u64,
    epochs: u32,
    seed: u64,
    path: &Path,
    group: Option<&Arc<gran::dist::ProcessGroup>>,
) -> Result<TrainConfig> {
    let cfg = TrainConfig {
        iterations,
        epochs,
        batch_size: a.batch_size,
        lr_g: a.lr_g,
        lr_d: a.lr_d,
        d_weight_decay: a.d_weight_decay,
        seed,
        // Every step comes to the CLI, which draws the bar and averages the lines itself.
        report_every: 1,
        checkpoint_path: Some(path.to_path_buf()),
        checkpoint_every: a.checkpoint_every,
        precision: a.precision.into(),
        ema_decay: a.ema_decay,
        ema_start: a.ema_start,
        lr_schedule: a.lr_schedule.into(),
        cuda_graph: a.cuda_graph,
        recompute: a.recompute,
        augment: match a.augment {
            AugmentArg::Ada => gran::train::Augment::Adaptive { target: a.augment_target, floor: a.augment_p },
            AugmentArg::Fixed => gran::train::Augment::Fixed(a.augment_p),
            AugmentArg::Off => gran::train::Augment::Off,
        },
        augment_speed: a.augment_speed,
        augment_flip: a.flip,
        r1_gamma: a.r1_gamma,
        r1_every: a.r1_every,
        canvas_penalty: a.canvas_penalty,
        group: group.cloned().map(gran::train::Group),
        ..TrainConfig::default()
    };
    cfg.validate()?;
    Ok(cfg)
}

/// A run of `gran train` once its model and settings are known.
struct Run<'a> {
    a: &'a Args,
    out: &'a Out,
    model: Arc<Model>,
    /// The checkpoint it writes.
    path: PathBuf,
    group: Option<Arc<gran::dist::ProcessGroup>>,
}

impl Run<'_> {
    /// Trains with the progress bar, until the run ends or an interrupt stops it at a step
    /// boundary; then the model holds the weights of its last step (the same on every rank of
    /// a group), the leader writes them, and the run ends with a Cancelled status.
    fn train(&self, data: &gran::Dataset, cfg: &TrainConfig) -> Result<Progress> {
        let first = self.model.step();
        let end = cfg.run_end(first, data.count())?;
        install_ctrl_c()?;
        *TRAINING.lock() = Some(self.model.clone());
        let mut reporter = Reporter::new(self.out, first, end, self.a.report_every, self.a.batch_size);
        let result = gran::train(&self.model, data, cfg, &mut |p| {
            reporter.step(p);
            STOP.load(Ordering::SeqCst)
        });
        reporter.finish();
        TRAINING.lock().take();
        match result {
            Err(e) if e.kind == ErrorKind::Cancelled => {
                if gran::dist::leads(self.group.as_deref()) {
                    checkpoint::save(&self.model, &self.path)?;
                }
                Err(Error::new(
                    ErrorKind::Cancelled,
                    format!(
                        "stopped by an interrupt (Ctrl-C or SIGTERM) at step {}; checkpoint written to {} (continue with: gran train --resume {})",
                        self.model.step(),
                        self.path.display(),
                        self.path.display()
                    ),
                ))
            }
            other => other,
        }
    }

    /// The run's result, from step `first` to `last` on `images` images: the last step's losses
    /// and the checkpoint (and, in a group, the share of the run spent in all-reduce).
    fn report(&self, first: u64, last: &Progress, images: usize) {
        let path = &self.path;
        let value = serde_json::json!({
            "checkpoint": path.display().to_string(), "first_step": first, "step": last.step,
            "d_loss": last.d_loss, "g_loss": last.g_loss, "d_real": last.d_real, "d_fake": last.d_fake,
            "augment_p": last.augment_p,
            "elapsed_s": last.elapsed_s, "images": images, "config": config_json(self.model.config()),
        });
        if let Some(g) = &self.group {
            let steps = (last.step - first).max(1) as f64;
            self.out.note(&format!(
                "distributed: {} processes; all-reduce {:.2} ms per step ({:.1}% of the run, waiting for the others included)",
                g.world_size(),
                1e3 * last.allreduce_s / steps,
                100.0 * last.allreduce_s / last.elapsed_s.max(1e-9)
            ));
        }
        self.out.result("train", value, || {
            format!(
                "trained steps {first} -> {} in {} ({:.0} img/s); last step: D loss {:.3}, G loss {:.3}, D(x) {:.2}, \
                 D(G(z)) {:.2}, augmentation p {:.2}\ncheckpoint: {}",
                last.step,
                progress::clock(last.elapsed_s),
                (last.step - first) as f64 * self.a.batch_size as f64 / last.elapsed_s.max(1e-9),
                last.d_loss,
                last.g_loss,
                last.d_real,
                last.d_fake,
                last.augment_p,
                path.display()
            )
        });
    }
}

/// The run's settings as the trainer resolves them: what a user with images of another size gets
/// without asking (R1 by image size).
fn settings_line(cfg: &TrainConfig, height: u32) -> String {
    let augment = match cfg.augment {
        gran::train::Augment::Off => "off".to_string(),
        gran::train::Augment::Fixed(p) => format!("fixed p {p}"),
        gran::train::Augment::Adaptive { target, floor } => format!("adaptive (target {target}, p at least {floor})"),
    };
    let (gamma, how) = match cfg.r1_gamma {
        Some(g) => (g, String::new()),
        None => (gran::train::r1_gamma_for(height), format!(" (by image size, {height}x{height})")),
    };
    let r1 = if gamma > 0.0 { format!("gamma {gamma} every {} steps{how}", cfg.r1_every) } else { format!("off{how}") };
    let canvas = match cfg.canvas_penalty.unwrap_or_else(|| gran::train::canvas_penalty_for(height)) {
        w if w > 0.0 => format!("; canvas penalty {w}"),
        _ => String::new(),
    };
    format!(
        "training: lr G {}, D {}, batch {}; augmentation {augment}{}; R1 {r1}{canvas}",
        cfg.lr_g,
        cfg.lr_d,
        cfg.batch_size,
        if cfg.augment_flip { " with flips" } else { "" }
    )
}
