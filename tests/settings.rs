//! Module arguments: every setting under its CONFIG name (`tq.<name>`) or
//! the bare name; anything unknown, without a value or malformed stops the
//! load with a log line naming the argument.

mod common;
use common::*;

fn settings(c: &mut Conn) -> Vec<(String, String)> {
    let flat = c.strings(&["CONFIG", "GET", "tq.*"]);
    let mut pairs: Vec<(String, String)> = flat.chunks(2).map(|p| (p[0].clone(), p[1].clone())).collect();
    pairs.sort();
    pairs
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn module_arguments_under_either_name_show_in_config_get() {
    let args = [
        "tq.auto-promote",
        "no",
        "tq.lease-ms",
        "1500",
        "max-deliveries",
        "3",
        "TQ.Timer-Batch",
        "7",
        "metrics-flush-ms",
        "500",
    ];
    let s = Server::start_with(Opts { module_args: args.iter().map(|a| a.to_string()).collect(), ..Opts::timer() });
    let mut c = s.conn();
    assert_eq!(
        settings(&mut c),
        pairs(&[
            ("tq.auto-promote", "no"),
            ("tq.lease-ms", "1500"),
            ("tq.max-deliveries", "3"),
            ("tq.metrics", "yes"),
            ("tq.metrics-flush-ms", "500"),
            ("tq.timer-batch", "7")
        ])
    );
}

#[test]
fn the_config_file_overrides_a_module_argument() {
    // Module arguments are the settings' defaults: a `tq.<name>` line of the
    // config file (here its command-line form) and CONFIG SET win, so CONFIG
    // REWRITE never writes a line the arguments would then contradict.
    let s = Server::start_with(Opts::timer_with(&["tq.lease-ms", "900"]).with_args(&["--tq.lease-ms", "700"]));
    let mut c = s.conn();
    assert_eq!(c.strings(&["CONFIG", "GET", "tq.lease-ms"]), ["tq.lease-ms", "700"]);
}

#[test]
fn a_bad_module_argument_stops_the_server_naming_it() {
    for (args, says) in [
        (&["tq.lease", "500"][..], "unknown module argument 'tq.lease'"),
        (&["tq.auto-promote", "no", "tq.lease-ms"][..], "module argument 'tq.lease-ms' has no value"),
        (&["tq.auto-promote", "maybe"][..], "module argument 'tq.auto-promote': 'maybe' is not yes or no"),
        (&["tq.lease-ms", "1m"][..], "module argument 'tq.lease-ms': '1m' is not an integer"),
        (&["lease-ms", "5"][..], "module argument 'lease-ms': 5 is out of range (100 to 2592000000)"),
        (
            &["tq.metrics-flush-ms", "99"][..],
            "module argument 'tq.metrics-flush-ms': 99 is out of range (100 to 60000)",
        ),
    ] {
        let log = Server::start_must_fail(Opts::timer_with(args));
        assert!(log.contains(&format!("tq refuses to load: {says}")), "{args:?}: the log should say {says:?}:\n{log}");
    }
}

#[test]
fn module_load_refuses_a_bad_argument_and_takes_a_good_one() {
    let s =
        Server::start_with(Opts { module: false, ..Opts::default() }.with_args(&["--enable-module-command", "yes"]));
    let mut c = s.conn();
    let path = module_path().to_string_lossy().into_owned();
    let e = c.err(&["MODULE", "LOAD", &path, "tq.auto-promote", "off"]);
    assert!(e.contains("Error loading the extension") || e.contains("ERR"), "{e}");
    assert!(s.log().contains("module argument 'tq.auto-promote': 'off' is not yes or no"), "{}", s.log());
    assert!(c.strings(&["CONFIG", "GET", "tq.*"]).is_empty(), "no setting left behind by the refused load");

    c.ok(&["MODULE", "LOAD", &path, "tq.auto-promote", "no", "lease-ms", "2500"]);
    assert_eq!(
        settings(&mut c),
        pairs(&[
            ("tq.auto-promote", "no"),
            ("tq.lease-ms", "2500"),
            ("tq.max-deliveries", "5"),
            ("tq.metrics", "yes"),
            ("tq.metrics-flush-ms", "2000"),
            ("tq.timer-batch", "250")
        ])
    );
}

#[test]
fn module_loadex_takes_settings_as_configs_and_as_arguments() {
    let s =
        Server::start_with(Opts { module: false, ..Opts::default() }.with_args(&["--enable-module-command", "yes"]));
    let mut c = s.conn();
    let path = module_path().to_string_lossy().into_owned();
    c.err(&["MODULE", "LOADEX", &path, "ARGS", "tq.max-deliveries", "0"]);
    assert!(s.log().contains("module argument 'tq.max-deliveries': 0 is out of range (1 to 1000000)"), "{}", s.log());
    // CONFIG wins over an argument, as a config-file line does.
    let args = ["CONFIG", "tq.lease-ms", "700", "ARGS", "tq.lease-ms", "900", "timer-batch", "9"];
    c.ok(&[&["MODULE", "LOADEX", path.as_str()][..], &args[..]].concat());
    assert_eq!(c.strings(&["CONFIG", "GET", "tq.lease-ms"]), ["tq.lease-ms", "700"]);
    assert_eq!(c.strings(&["CONFIG", "GET", "tq.timer-batch"]), ["tq.timer-batch", "9"]);
}
