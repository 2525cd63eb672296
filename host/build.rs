//! Builds the stand-ins for a Fluent Bit binary's exported symbols (`csrc/host_symbols.c`):
//! as Fluent Bit >= 2.0 exports them (one build per instance layout: v4.1.2's, v5.1.1's), and
//! as v1.9.10 does. flb-host loads one of them with RTLD_GLOBAL before the plugin, as
//! `FLB_HOST_KIND` asks.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    // The C compiler for the target, looked up as the `cc` crate does: a cross build (the
    // aarch64 tests of scripts/arm64-test.sh, under cargo-zigbuild) names one per target.
    let target = std::env::var("TARGET").unwrap_or_default();
    let vars = [
        format!("CC_{target}"),
        format!("CC_{}", target.replace('-', "_")),
        "TARGET_CC".to_owned(),
        "CC".to_owned(),
    ];
    let cc = vars
        .iter()
        .find_map(|var| std::env::var(var).ok())
        .unwrap_or_else(|| "cc".to_owned());
    // The byte of the output instance that holds its worker count (`tp_workers`), per
    // version (host.rs, `InstanceLayout`).
    for (name, defines) in [
        (
            "libflbhost_v5.so",
            &["-DFLB_HOST_V5", "-DFLBHOST_TP_WORKERS_OFFSET=872"][..],
        ),
        (
            "libflbhost_v4.so",
            &["-DFLB_HOST_V5", "-DFLBHOST_TP_WORKERS_OFFSET=768"][..],
        ),
        ("libflbhost_v1.so", &["-DFLBHOST_TP_WORKERS_OFFSET=608"][..]),
    ] {
        let status = Command::new(&cc)
            .args(["-shared", "-fPIC", "-O1", "-Wall", "-o"])
            .arg(out.join(name))
            .args(defines)
            .arg("csrc/host_symbols.c")
            .arg("-lpthread")
            .status()
            .expect("run the C compiler");
        assert!(status.success(), "cc failed for {name}");
    }
    println!("cargo:rerun-if-changed=csrc/host_symbols.c");
    for var in &vars {
        println!("cargo:rerun-if-env-changed={var}");
    }
}
