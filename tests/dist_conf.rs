//! dist/tq.conf, the config snippet of `make dist`, loads the module and
//! lists exactly the settings it registers, each at its default.

mod common;
use common::*;

/// The snippet's `tq.<name> <value>` lines and its `loadmodule` lines.
fn snippet() -> (Vec<(String, String)>, Vec<String>) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dist/tq.conf");
    let text = std::fs::read_to_string(&path).expect("dist/tq.conf");
    let mut settings = Vec::new();
    let mut loads = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (directive, value) = line.split_once(' ').unwrap_or((line, ""));
        match directive {
            "loadmodule" => loads.push(value.to_string()),
            d if d.starts_with("tq.") => settings.push((d.to_string(), value.trim().to_string())),
            other => panic!("dist/tq.conf: unexpected directive {other}"),
        }
    }
    (settings, loads)
}

fn config_get_all(c: &mut Conn) -> Vec<(String, String)> {
    let flat = c.strings(&["CONFIG", "GET", "tq.*"]);
    let mut pairs: Vec<(String, String)> = flat.chunks(2).map(|p| (p[0].clone(), p[1].clone())).collect();
    pairs.sort();
    pairs
}

#[test]
fn the_conf_snippet_lists_every_setting_at_its_default() {
    let (mut settings, loads) = snippet();
    assert_eq!(loads.len(), 1, "one loadmodule line: {loads:?}");
    assert!(loads[0].ends_with("/libtq.so"), "{loads:?}");
    // Against a server with nothing set: the registered settings and defaults.
    let s = Server::start_with(Opts::timer());
    settings.sort();
    assert_eq!(settings, config_get_all(&mut s.conn()), "dist/tq.conf against CONFIG GET tq.*");
    // And the server takes the lines as config lines (their command-line form).
    let args: Vec<String> = settings.iter().flat_map(|(k, v)| [format!("--{k}"), v.clone()]).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let s = Server::start_with(Opts::timer().with_args(&args));
    assert_eq!(settings, config_get_all(&mut s.conn()));
}
