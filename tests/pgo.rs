//! `make pgo` (scripts/pgo.sh), the module `make dist` ships and `make
//! bench` measures: built again with the profile of a training run, whose
//! load must have driven the paths a job takes (or the build is tuned for
//! nothing), and which serves jobs on the server under test like the plain
//! build.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;

/// Functions the training load must run (symbol name parts): the take, the
/// completion, the enqueue, blocking pickups, the timer's promotion, and a
/// lease run out giving its job back.
const HOT: [&str; 6] = [
    "7tq_core4work4take",
    "7tq_core4work8complete",
    "7tq_core5queue7enqueue",
    "2tq8commands4work10bpop_ready",
    "7tq_core5queue17promote_reporting",
    "7tq_core4work9give_back",
];

fn llvm_profdata() -> PathBuf {
    let rustc = |args: &[&str]| {
        let out = Command::new("rustc").args(args).output().expect("rustc");
        String::from_utf8(out.stdout).expect("utf8")
    };
    let host = rustc(&["-vV"]).lines().find_map(|l| l.strip_prefix("host: ").map(str::to_string)).expect("host");
    PathBuf::from(rustc(&["--print", "sysroot"]).trim()).join(format!("lib/rustlib/{host}/bin/llvm-profdata"))
}

#[test]
fn the_profile_guided_build_is_trained_on_a_jobs_paths_and_serves_jobs() {
    // Built once (later runs find it up to date), then loaded into this run's server.
    let out = Command::new(root().join("scripts/pgo.sh")).current_dir(root()).output().expect("scripts/pgo.sh");
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(3) {
        // Where rustup cannot add llvm-tools, the script says so and the
        // release build stands in (dist.sh, bench_all.sh).
        assert!(stderr.contains("llvm-profdata"), "{stderr}");
        eprintln!("no profile-guided build on this machine: {stderr}");
        return;
    }
    assert!(out.status.success(), "scripts/pgo.sh failed:\n{stderr}");
    let so = root().join(String::from_utf8_lossy(&out.stdout).trim());

    // The profile the build used is named by the build's stamp.
    let stamp = std::fs::read_to_string(root().join("target/pgo/stamp")).expect("target/pgo/stamp");
    let covered = Command::new(llvm_profdata())
        .args(["show", "--covered"])
        .arg(root().join(format!("target/pgo/tq-{}.profdata", stamp.trim())))
        .output()
        .expect("llvm-profdata show");
    let covered = String::from_utf8_lossy(&covered.stdout);
    for f in HOT {
        assert!(covered.contains(f), "the training load never ran {f}");
    }

    let s = Server::start_with(Opts {
        module: false,
        args: vec!["--loadmodule".into(), so.display().to_string()],
        ..Opts::default()
    });
    let mut c = s.conn();
    let n = ns("pgo");
    c.ok(&["TQ.ENQUEUE", &n, "q", "c", "[1]"]);
    assert_eq!(popped_job(c.ok(&["TQ.POP", &n, "w", "q"])), Some(("q".into(), job("q", "c", "[1]"))));
    let d = c.delivery(&n, "w");
    assert_eq!(c.ok(&["TQ.POP", &n, "w", "q", "ACK", &d]), Value::Nil);
    assert_eq!(c.stat(&n, "processed"), 1);
    // A delayed job, promoted by the timer, reaches a blocked take.
    c.ok(&["TQ.ENQUEUEIN", &n, "50", "q", "c", "[2]"]);
    let got = popped_job(c.ok(&["TQ.BPOP", &n, "w", "q", "5000"]));
    assert_eq!(got, Some(("q".into(), job("q", "c", "[2]"))));
    assert_eq!(c.ack(&n, "w"), Value::Okay);
    assert_eq!(c.stat(&n, "processed"), 2);
}
