//! The container logger for tests, as containerd's shim runs it: what the `slipway` binary
//! does when invoked that way, without building the whole binary for the agent's tests.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    match slipway_logs::logger_invocation(&args, std::env::vars_os()) {
        Some(Ok(invocation)) => match slipway_logs::run_logger(invocation) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("logger: {e}");
                ExitCode::FAILURE
            }
        },
        Some(Err(e)) => {
            eprintln!("logger: {e}");
            ExitCode::from(2)
        }
        None => {
            eprintln!("slipway-test-logger runs only as containerd's container logger");
            ExitCode::from(2)
        }
    }
}
