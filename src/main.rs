//! ccc-dialer: parse, set up logging, run the command, exit with its code. Nothing else.

use clap::Parser;
use std::process::ExitCode;

use ccc_dialer::cli::{Cli, Command};
use ccc_dialer::{commands, exit, telemetry};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let progress_bar = matches!(&cli.command, Command::Run(a) if !a.no_progress && !a.dry_run)
        && std::io::IsTerminal::is_terminal(&std::io::stderr());
    telemetry::init(cli.log_format, cli.log_level.as_deref(), progress_bar);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return exit::finish(Err(exit::Failure::other(e))),
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Run(a) => commands::run::run(a).await,
            Command::Status(a) => commands::status::run(a).await,
            Command::Export(a) => commands::export::run(a).await,
            Command::Report(a) => commands::report::run(a).await,
            Command::Purge(a) => commands::purge::run(a).await,
            Command::Requeue(a) => commands::requeue::run(a).await,
            Command::Outcomes(a) => commands::outcomes::run(a).await,
            Command::Dnc(a) => commands::dnc::run(a).await,
            Command::Call(a) => commands::call::run(a).await,
            Command::Mock(a) => commands::mock::run(*a).await,
            Command::Serve(a) => commands::serve::run(a).await,
            Command::Healthcheck(a) => commands::healthcheck::run(a).await,
        }
    });
    exit::finish(result)
}
