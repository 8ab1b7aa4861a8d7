//! ndu-sync: keeps one nginx's upstreams equal to a desired state held in
//! etcd (keys `PREFIX/upstreams/NAME`, see the README), without a reload.

/// One line on stderr (the journal under systemd). A line that cannot be
/// written (stderr a pipe whose reader is gone: a logger restarting, `| head`)
/// is dropped: `eprintln!` would panic and stop the agent, whose changes
/// matter more than its log (hunt 21 F7).
macro_rules! log {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), "ndu-sync: {}", format_args!($($arg)*));
    }};
}

mod args;
mod document;
mod nginx;
mod plan;
mod store;
mod sync;

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.iter().any(|a| a == "--help" || a == "-h") {
        println!("{}", args::USAGE);
        return;
    }
    let config = match args::parse(&argv) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("ndu-sync: {e}\n{}", args::USAGE);
            std::process::exit(2);
        }
    };
    // One nginx, one etcd connection: a single thread is enough.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("ndu-sync: cannot start: {e}");
            std::process::exit(1);
        }
    };
    runtime.block_on(sync::run(config));
}
