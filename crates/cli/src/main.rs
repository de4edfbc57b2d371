//! `roomkit-graph`: the command line. Data goes to stdout, everything else to
//! stderr; `--json` gives output for scripts.

mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Workflow graphs from the terminal.
#[derive(Parser)]
#[command(name = "roomkit-graph", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Checks graph files and reports every mistake with its node and field.
    /// Exits 0 when every file is valid, 1 otherwise.
    Validate {
        /// Graph JSON files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print one JSON report for all files.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Validate { files, json } => validate::run(&files, json),
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("roomkit-graph: {error:#}");
            ExitCode::from(2)
        }
    }
}
