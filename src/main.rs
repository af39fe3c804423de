#![forbid(unsafe_code)]

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = rootseal::cli::Cli::parse();
    match rootseal::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("rootseal: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
