//! What the user reads on stdout: one line per step (`✓ step: detail`, `✗ step: cause`
//! with a `hint:` line under it, `- step: skipped (why)`), notes (`! …`) about options the
//! plugin will ignore, and a last line with the result. The plugin's own log lines go to
//! stderr, as in Fluent Bit.

use std::fmt::Display;
use std::process::ExitCode;

/// The steps passed and failed so far.
#[derive(Debug, Default)]
pub struct Report {
    passed: usize,
    failed: usize,
    /// Lines go to stderr (stdout holds `--print-iam=json`'s document).
    to_stderr: bool,
}

impl Report {
    /// A report whose lines go to stderr.
    pub fn on_stderr() -> Report {
        Report {
            to_stderr: true,
            ..Report::default()
        }
    }

    fn line(&self, text: impl Display) {
        if self.to_stderr {
            eprintln!("{text}");
        } else {
            println!("{text}");
        }
    }

    /// A line of what the check read (the task definition), not a step.
    pub fn info(&self, text: impl Display) {
        self.line(text);
    }

    pub fn pass(&mut self, step: &str, detail: impl Display) {
        self.passed += 1;
        self.line(format_args!("✓ {step}: {detail}"));
    }

    pub fn fail(&mut self, step: &str, cause: impl Display, hint: Option<&str>) {
        self.failed += 1;
        self.line(format_args!("✗ {step}: {cause}"));
        if let Some(hint) = hint {
            self.line(format_args!("  hint: {hint}"));
        }
    }

    pub fn skip(&self, step: &str, why: impl Display) {
        self.line(format_args!("- {step}: skipped ({why})"));
    }

    pub fn note(&self, text: impl Display) {
        self.line(format_args!("! {text}"));
    }

    /// Prints the result line; exit status 0 when nothing failed, else 1.
    pub fn finish(self) -> ExitCode {
        if self.failed == 0 {
            self.line(format_args!("result: all {} steps passed", self.passed));
            ExitCode::SUCCESS
        } else {
            self.line(format_args!(
                "result: {} of {} steps failed",
                self.failed,
                self.failed + self.passed
            ));
            ExitCode::FAILURE
        }
    }
}
