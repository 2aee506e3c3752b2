//! Training progress, three ways: an indicatif bar (rate, ETA, losses) when stderr is a
//! terminal; plain lines on stderr every `--report-every` steps when it is not (a log file, a
//! pipe); with --json, one JSON object per report on stdout. Library warnings go to stderr
//! above the bar (crate::term).

use gran::train::Progress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use std::io::IsTerminal;
use std::time::Instant;

/// Library warnings (e.g. "the discriminator wins outright") on stderr.
pub fn install_log_sink() {
    gran::log::set_sink(
        Some(std::sync::Arc::new(|_level, message: &str| crate::term::println(&format!("gran: warning: {message}")))),
        gran::log::Level::Warn,
    );
}

enum Mode {
    Bar(ProgressBar),
    Lines,
    Json,
    Quiet,
}

/// Turns the per-step reports of `gran::train` into what the user sees.
pub struct Reporter {
    mode: Mode,
    /// Steps between lines (plain or JSON).
    every: u64,
    first: u64,
    end: u64,
    batch: u64,
    /// The augmentation probability of the last step.
    augment_p: f64,
    /// Sums of (d_loss, g_loss, d_real, d_fake) and steps since the last line.
    sums: [f64; 4],
    steps: u64,
    since: Instant,
    started: Instant,
}

impl Reporter {
    /// A run from model step `first` to `end` with minibatches of `batch` images.
    pub fn new(out: &crate::output::Out, first: u64, end: u64, every: u64, batch: u32) -> Reporter {
        let mode = if out.json {
            Mode::Json
        } else if out.quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(Some(end - first), ProgressDrawTarget::stderr());
            // Two lines, so that the bar keeps its width on an 80-column terminal: the bar, then
            // the rate and the last step's losses.
            let images = batch as f64;
            bar.set_style(
                ProgressStyle::with_template(
                    "training [{elapsed_precise}] {wide_bar:.cyan/blue} {pos}/{len} steps  ETA {eta}\n         {rate}  {msg}",
                )
                .expect("a valid template")
                .with_key("rate", move |s: &ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{:.2} steps/s ({:.0} img/s)", s.per_sec(), s.per_sec() * images);
                })
                .progress_chars("=> "),
            );
            crate::term::show(&bar);
            Mode::Bar(bar)
        } else {
            Mode::Lines
        };
        let now = Instant::now();
        Reporter {
            mode,
            every: every.max(1),
            first,
            end,
            batch: batch as u64,
            sums: [0.0; 4],
            augment_p: 0.0,
            steps: 0,
            since: now,
            started: now,
        }
    }

    /// One training step's report (the library reports every step to the CLI).
    pub fn step(&mut self, p: &Progress) {
        for (s, v) in self.sums.iter_mut().zip([p.d_loss, p.g_loss, p.d_real, p.d_fake]) {
            *s += v;
        }
        self.steps += 1;
        self.augment_p = p.augment_p;
        if let Mode::Bar(bar) = &self.mode {
            bar.set_position(p.step - self.first);
            bar.set_message(format!(
                "D loss {:.3}  G loss {:.3}  D(x) {:.2}  D(G(z)) {:.2}  p {:.2}",
                p.d_loss, p.g_loss, p.d_real, p.d_fake, p.augment_p
            ));
        }
        let done = p.step - self.first;
        if done % self.every == 0 || p.step == self.end {
            self.line(p.step);
        }
    }

    /// Means since the last line, as a plain or JSON line.
    fn line(&mut self, step: u64) {
        if self.steps == 0 {
            return;
        }
        let k = self.steps as f64;
        let [d, g, dr, df] = self.sums.map(|s| s / k);
        let secs = self.since.elapsed().as_secs_f64();
        let rate = if secs > 0.0 { k * self.batch as f64 / secs } else { 0.0 };
        let elapsed = self.started.elapsed().as_secs_f64();
        let done = (step - self.first) as f64;
        let eta = if done > 0.0 { elapsed / done * (self.end - step) as f64 } else { 0.0 };
        let p = self.augment_p;
        match &self.mode {
            Mode::Lines => eprintln!(
                "step {step}/{}  D loss {d:.3}  G loss {g:.3}  D(x) {dr:.2}  D(G(z)) {df:.2}  p {p:.2}  \
                 {rate:.0} img/s  elapsed {}  ETA {}",
                self.end,
                clock(elapsed),
                clock(eta)
            ),
            Mode::Json => println!(
                "{}",
                serde_json::json!({"type": "progress", "step": step, "total_steps": self.end,
                    "d_loss": d, "g_loss": g, "d_real": dr, "d_fake": df, "augment_p": p, "images_per_s": rate,
                    "elapsed_s": elapsed, "eta_s": eta})
            ),
            Mode::Bar(_) | Mode::Quiet => {}
        }
        self.sums = [0.0; 4];
        self.steps = 0;
        self.since = Instant::now();
    }

    /// Ends the bar, leaving its last state on the terminal (where a stopped run stopped).
    pub fn finish(&mut self) {
        if let Mode::Bar(bar) = &self.mode {
            bar.abandon();
            crate::term::forget();
            // The bar leaves the cursor on its last line: what follows starts on a line of its own.
            eprintln!();
        }
    }
}

/// h:mm:ss
pub fn clock(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}
