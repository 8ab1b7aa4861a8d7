//! Turns what nginx-sys learnt about the nginx tree we build against into
//! cfgs, so code can follow the struct layout of that nginx version.
//!
//! nginx-sys' own build script runs first and fails when `NGINX_BUILD_DIR`
//! does not point at a configured nginx tree; run `scripts/setup.sh` (or set
//! `NGINX_BUILD_DIR`) before `cargo build`.

use std::env;

/// nginx versions whose peer structures changed in ways the module must follow.
const VERSION_CHECKS: &[(u64, &str)] = &[
    // "Upstream: re-resolvable servers": peers gained refs/zombie/host and
    // the peer list gained `config` and `resolve`.
    (1_027_003, "nginx1_27_3"),
];

fn main() {
    // scripts/check-misuse.sh compiles src/misuse.rs's items one by one.
    println!("cargo::rustc-check-cfg=cfg(ndu_misuse, values(any()))");
    println!(
        "cargo::rustc-check-cfg=cfg(ngx_feature, values({}))",
        env::var("DEP_NGINX_FEATURES_CHECK").unwrap_or_else(|_| "any()".to_string())
    );
    println!("cargo::rerun-if-env-changed=DEP_NGINX_FEATURES_CHECK");
    println!("cargo::rerun-if-env-changed=DEP_NGINX_FEATURES");
    if let Ok(features) = env::var("DEP_NGINX_FEATURES") {
        for feature in features.split(',').map(str::trim).filter(|f| !f.is_empty()) {
            println!("cargo::rustc-cfg=ngx_feature=\"{feature}\"");
        }
    }

    for (_, name) in VERSION_CHECKS {
        println!("cargo::rustc-check-cfg=cfg({name})");
    }
    println!("cargo::rerun-if-env-changed=DEP_NGINX_VERSION_NUMBER");
    let version = env::var("DEP_NGINX_VERSION_NUMBER").ok().and_then(|v| v.parse::<u64>().ok()).unwrap_or_else(|| {
        panic!(
            "nginx-sys did not report the nginx version; is NGINX_BUILD_DIR a configured \
                 nginx tree? Run scripts/setup.sh first."
        )
    });
    for (min, name) in VERSION_CHECKS {
        if version >= *min {
            println!("cargo::rustc-cfg={name}");
        }
    }
    println!("cargo::rustc-env=NGX_DYNUPS_BUILT_FOR_NGINX={version}");
}
