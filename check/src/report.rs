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
}

impl Report {
    pub fn pass(&mut self, step: &str, detail: impl Display) {
        self.passed += 1;
        println!("✓ {step}: {detail}");
    }

    pub fn fail(&mut self, step: &str, cause: impl Display, hint: Option<&str>) {
        self.failed += 1;
        println!("✗ {step}: {cause}");
        if let Some(hint) = hint {
            println!("  hint: {hint}");
        }
    }

    pub fn skip(&self, step: &str, why: impl Display) {
        println!("- {step}: skipped ({why})");
    }

    pub fn note(&self, text: impl Display) {
        println!("! {text}");
    }

    /// Prints the result line; exit status 0 when nothing failed, else 1.
    pub fn finish(self) -> ExitCode {
        if self.failed == 0 {
            println!("result: all {} steps passed", self.passed);
            ExitCode::SUCCESS
        } else {
            println!(
                "result: {} of {} steps failed",
                self.failed,
                self.failed + self.passed
            );
            ExitCode::FAILURE
        }
    }
}
