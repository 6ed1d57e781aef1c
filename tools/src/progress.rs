//! Progress of the offline tools' long passes: a bar with bytes per second
//! and ETA when stderr is a terminal (indicatif), otherwise plain lines on
//! stderr, one every few seconds and one at the end of each pass, which is
//! what a log file or CI wants.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, ProgressBar, ProgressStyle};

const PLAIN_LINE_EVERY: Duration = Duration::from_secs(5);

pub struct Reporter {
    tool: &'static str,
    terminal: bool,
    pass: Mutex<Option<Pass>>,
}

struct Pass {
    name: String,
    total: u64,
    done: u64,
    started: Instant,
    last_line: Instant,
    bar: Option<ProgressBar>,
}

impl Pass {
    fn rate(&self) -> f64 {
        self.done as f64 / self.started.elapsed().as_secs_f64().max(1e-3)
    }

    fn line(&self, tool: &str) -> String {
        let rate = self.rate();
        let eta = if rate > 0.0 {
            format!(
                ", ETA {:.0} s",
                self.total.saturating_sub(self.done) as f64 / rate
            )
        } else {
            String::new()
        };
        format!(
            "{tool}: {}: {} of {} ({}/s{eta})",
            self.name,
            HumanBytes(self.done),
            HumanBytes(self.total),
            HumanBytes(rate as u64)
        )
    }

    fn finish(self, tool: &str) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        eprintln!(
            "{tool}: {}: {} done in {:.1} s ({}/s)",
            self.name,
            HumanBytes(self.done),
            self.started.elapsed().as_secs_f64(),
            HumanBytes(self.rate() as u64)
        );
    }
}

impl Reporter {
    pub fn new(tool: &'static str) -> Self {
        Reporter {
            tool,
            terminal: std::io::stderr().is_terminal(),
            pass: Mutex::new(None),
        }
    }

    /// Ends the current pass with its summary line.
    pub fn finish(&self) {
        if let Some(pass) = self.lock().take() {
            pass.finish(self.tool);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Pass>> {
        // A panic elsewhere while drawing must not also break the report.
        self.pass
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl recovery::Progress for Reporter {
    fn start(&self, pass: &str, total_bytes: u64) {
        let mut current = self.lock();
        if let Some(previous) = current.take() {
            previous.finish(self.tool);
        }
        let bar = self.terminal.then(|| {
            let bar = ProgressBar::new(total_bytes);
            if let Ok(style) = ProgressStyle::with_template(
                "{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message(format!("{}: {pass}", self.tool));
            bar
        });
        let now = Instant::now();
        *current = Some(Pass {
            name: pass.to_string(),
            total: total_bytes,
            done: 0,
            started: now,
            last_line: now,
            bar,
        });
    }

    fn advance(&self, bytes: u64) {
        let mut current = self.lock();
        let Some(pass) = current.as_mut() else {
            return;
        };
        pass.done = pass.done.saturating_add(bytes);
        match &pass.bar {
            Some(bar) => bar.inc(bytes),
            None if pass.last_line.elapsed() >= PLAIN_LINE_EVERY => {
                pass.last_line = Instant::now();
                eprintln!("{}", pass.line(self.tool));
            }
            None => {}
        }
    }
}
