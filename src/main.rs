use std::process::ExitCode;

use clap::Parser;

use delightsam::cli::Cli;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    let result = match cli.command {
        Some(command) => delightsam::cli::run(command),
        None => delightsam::app::run(cli.file),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the file and the reason, as the library's errors word them.
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

fn one_line(e: &anyhow::Error) -> String {
    delightsam::error_chain(e.as_ref()).replace('\n', " ")
}

