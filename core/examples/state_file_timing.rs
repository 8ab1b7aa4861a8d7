//! How long the state files take to read (`nginx -t`, every reload and
//! start read them): a `dynamic_state_file` of 20,000 servers, with and
//! without IDs, and a `dyups_upstream_conf` of 2,000 upstreams of 4 servers
//! with IDs. Prints one line per file: "NAME<TAB>MILLISECONDS" (the best
//! of 5). Run by `scripts/bench/state-files.sh`.
use std::fmt::Write as _;
use std::time::Instant;

use dynamic_upstream_core::state::{parse_dyups_conf, parse_server_state};

fn best_of_5(parse: impl Fn()) -> f64 {
    (0..5)
        .map(|_| {
            let started = Instant::now();
            parse();
            started.elapsed().as_secs_f64() * 1000.0
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let (mut plain, mut with_ids) = (String::new(), String::new());
    for i in 0..20_000 {
        let _ = writeln!(plain, "server 10.{}.{}.1:80;", i / 250, i % 250);
        let _ = writeln!(with_ids, "server 10.{}.{}.1:80; # id={i}", i / 250, i % 250);
    }
    let mut dyups = String::new();
    for u in 0..2_000 {
        let _ = writeln!(dyups, "upstream up{u} {{");
        for s in 0..4 {
            let _ = writeln!(dyups, "server 10.0.{}.{s}:80; # id={}", u % 250, u * 4 + s);
        }
        let _ = writeln!(dyups, "}}");
    }
    let state = |text: &str| best_of_5(|| assert!(parse_server_state(text, false).unwrap().is_some()));
    println!("dynamic_state_file 20000 servers\t{:.1}", state(&plain));
    println!("dynamic_state_file 20000 servers with IDs\t{:.1}", state(&with_ids));
    println!(
        "dyups_upstream_conf 2000 x 4 servers with IDs\t{:.1}",
        best_of_5(|| assert_eq!(parse_dyups_conf(&dyups).unwrap().len(), 2_000))
    );
}
