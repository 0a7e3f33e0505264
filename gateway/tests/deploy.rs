//! The deployment files in `deploy/`, checked against the code: the
//! systemd unit passes `systemd-analyze verify` and keeps its hardening,
//! the example TOML names every key the gateway's file config accepts and
//! a node starts from it, and the Containerfile copies every workspace
//! member it builds from.
#![allow(clippy::unwrap_used)]

use lifeline_tests::{GatewayLaunch, GatewayLog, TempDir};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The gateway's configuration source: `struct FileConfig` is the list of
/// keys the TOML file accepts.
const CONFIG_RS: &str = include_str!("../src/config.rs");

/// Where the unit runs the gateway and reads its configuration.
const UNIT_BINARY: &str = "/usr/local/bin/gateway";
const UNIT_CONFIG: &str = "/etc/lifeline/gateway.toml";

/// A child process killed (and reaped) when dropped.
#[derive(Debug)]
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

fn read(path: &str) -> String {
    let p = repo_file(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A key of `struct FileConfig` in config.rs: its name (a field's
/// `#[serde(rename = "...")]` counts) and the other names the file takes
/// for it (`#[serde(alias = "...")]`).
#[derive(Debug)]
struct FileKey {
    name: String,
    aliases: Vec<String>,
}

impl FileKey {
    fn is(&self, key: &str) -> bool {
        self.name == key || self.aliases.iter().any(|a| a == key)
    }
}

/// The `"..."` values of `attr = "..."` in an attribute line.
fn attr_values(line: &str, attr: &str) -> Vec<String> {
    line.split(&format!("{attr} = \""))
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_owned)
        .collect()
}

/// The keys of `struct FileConfig` in config.rs, in order.
fn file_config_keys() -> Vec<FileKey> {
    let start = CONFIG_RS
        .find("struct FileConfig {")
        .expect("gateway/src/config.rs has no `struct FileConfig {`");
    let body = &CONFIG_RS[start + "struct FileConfig {".len()..];
    let body = &body[..body.find("\n}").expect("struct FileConfig has no end")];
    let mut keys = Vec::new();
    let (mut rename, mut aliases) = (None, Vec::new());
    for line in body.lines().map(str::trim) {
        if line.starts_with("#[") {
            rename = rename.or(attr_values(line, "rename").pop());
            aliases.extend(attr_values(line, "alias"));
            continue;
        }
        if line.is_empty() || line.starts_with("//") {
            continue;
        }
        // `[pub[(...)] ]name: Type,` — a field starts with its name and a
        // single colon (a type's `::` or a continued line does not).
        let line = match line.strip_prefix("pub") {
            Some(rest) if rest.starts_with([' ', '(']) => {
                rest.trim_start_matches(|c| c != ' ').trim_start()
            }
            _ => line,
        };
        let name: String = line
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let rest = line[name.len()..].trim_start();
        if !name.is_empty() && rest.starts_with(':') && !rest.starts_with("::") {
            keys.push(FileKey {
                name: rename.take().unwrap_or(name),
                aliases: std::mem::take(&mut aliases),
            });
        }
    }
    assert!(
        keys.len() >= 20 && keys.iter().any(|k| k.name == "data_dir"),
        "reading struct FileConfig found only {keys:?}: the test's parser needs updating"
    );
    keys
}

/// A key line of the example TOML: `key = value`, or `#key = value` for
/// one left at its default.
#[derive(Debug)]
struct KeyLine {
    key: String,
    commented: bool,
}

fn key_line(line: &str) -> Option<KeyLine> {
    let (commented, rest) = match line.strip_prefix('#') {
        Some(rest) => (true, rest),
        None => (false, line),
    };
    let key: String = rest
        .chars()
        .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
        .collect();
    let after = rest[key.len()..].trim_start();
    (!key.is_empty() && after.starts_with('=')).then_some(KeyLine { key, commented })
}

/// The example TOML with every key line's `#` removed and the `set` keys
/// (by their name in `keys`, whichever name the file uses) given these
/// values (TOML text) instead.
fn uncommented(toml_text: &str, keys: &[FileKey], set: &[(&str, String)]) -> String {
    let mut out = String::new();
    for line in toml_text.lines() {
        let Some(k) = key_line(line) else {
            out.push_str(line);
            out.push('\n');
            continue;
        };
        let name = keys
            .iter()
            .find(|fk| fk.is(&k.key))
            .map_or(k.key.as_str(), |fk| fk.name.as_str());
        match set.iter().find(|(key, _)| *key == name) {
            Some((_, value)) => out.push_str(&format!("{} = {value}", k.key)),
            None => out.push_str(line.strip_prefix('#').unwrap_or(line)),
        }
        out.push('\n');
    }
    out
}

/// The unit's `Key=value` lines, in order.
fn directives(unit: &str) -> Vec<(String, String)> {
    unit.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with('[') && !l.is_empty())
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

fn directive<'a>(all: &'a [(String, String)], key: &str) -> Option<&'a str> {
    all.iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn seconds(value: &str) -> u64 {
    let v = value.trim();
    let (n, unit) = v.split_at(v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len()));
    let n: u64 = n
        .parse()
        .unwrap_or_else(|_| panic!("{value:?} is not a time"));
    match unit.trim() {
        "" | "s" | "sec" => n,
        "min" => n * 60,
        other => panic!("time unit {other:?} of {value:?}: the test reads s or min"),
    }
}

fn systemd_analyze(args: &[&str]) -> (bool, String) {
    let out = Command::new("systemd-analyze")
        .args(args)
        .env("SYSTEMD_LOG_COLOR", "0")
        .env("SYSTEMD_COLORS", "0")
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run systemd-analyze ({e}): install the Debian package systemd \
                 (.ci/run does); this test checks the unit with it and does not skip"
            )
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    let unit = read("deploy/lifeline-gateway.service");
    let exec = format!("{UNIT_BINARY} --config {UNIT_CONFIG} serve");
    let all = directives(&unit);
    assert_eq!(
        directive(&all, "ExecStart"),
        Some(exec.as_str()),
        "the unit's ExecStart"
    );

    // The unit as installed, with the binary this build made and a copy
    // of the example configuration in their places.
    let dir = TempDir::new("deploy-unit");
    let config = dir.path().join("gateway.toml");
    std::fs::copy(repo_file("deploy/gateway.toml"), &config).unwrap();
    let bin = env!("CARGO_BIN_EXE_gateway");
    let here = unit.replace(
        &format!("ExecStart={exec}"),
        &format!("ExecStart={bin} --config {} serve", config.display()),
    );
    assert!(here.contains(bin), "ExecStart was not rewritten");
    let path = dir.path().join("lifeline-gateway.service");
    std::fs::write(&path, &here).unwrap();
    let path = path.to_str().unwrap();

    let (ok, out) = systemd_analyze(&["verify", path]);
    // verify prints what it ignores (unknown keys, bad values) and still
    // succeeds: any line about this unit fails the test.
    let about_unit: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("lifeline-gateway") || l.contains(path))
        .collect();
    assert!(
        ok && about_unit.is_empty(),
        "systemd-analyze verify {path} {}:\n{out}\nthe unit:\n{here}",
        if ok { "warned" } else { "failed" }
    );

    // The sandbox as systemd scores it (0 is the most confined, 10 the
    // least; the unit is at 1.5): fails if hardening is lost.
    let (ok, out) = systemd_analyze(&["security", "--offline=true", "--threshold=20", path]);
    assert!(
        ok,
        "systemd-analyze security: the unit's exposure is above 2.0:\n{out}"
    );
}

#[test]
fn the_systemd_unit_keeps_its_hardening_and_matches_the_example_config() {
    let unit = read("deploy/lifeline-gateway.service");
    let all = directives(&unit);
    for (key, value) in [
        ("DynamicUser", "yes"),
        ("StateDirectory", "lifeline-gateway"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("NoNewPrivileges", "yes"),
        ("PrivateDevices", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectKernelLogs", "yes"),
        ("ProtectControlGroups", "yes"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("RestrictNamespaces", "yes"),
        ("LockPersonality", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("SystemCallFilter", "@system-service"),
        ("CapabilityBoundingSet", ""),
        ("AmbientCapabilities", ""),
        ("LimitNOFILE", "1048576"),
        ("Restart", "on-failure"),
        ("KillSignal", "SIGTERM"),
    ] {
        assert_eq!(directive(&all, key), Some(value), "{key}= in the unit");
    }

    // The data directory is the unit's state directory.
    let toml_text = read("deploy/gateway.toml");
    let config: toml::Table = toml::from_str(&uncommented(&toml_text, &[], &[])).unwrap();
    assert_eq!(
        config.get("data_dir").and_then(|v| v.as_str()),
        Some("/var/lib/lifeline-gateway"),
        "data_dir in deploy/gateway.toml"
    );
    assert!(
        toml_text
            .lines()
            .any(|l| l == "data_dir = \"/var/lib/lifeline-gateway\""),
        "data_dir is set (not left at its default) in deploy/gateway.toml"
    );

    // systemd waits for the drain (drain_timeout, then up to 3 s for the
    // audit records) before it kills the node.
    let drain = config
        .get("drain_timeout")
        .and_then(|v| v.as_integer())
        .expect("drain_timeout in deploy/gateway.toml");
    assert!(
        CONFIG_RS.contains("drain_timeout: secs(serve.drain_timeout, file.drain_timeout, 30)"),
        "the default drain timeout changed: update deploy/gateway.toml, the unit and this test"
    );
    assert_eq!(drain, 30, "drain_timeout shown in deploy/gateway.toml");
    let stop = seconds(directive(&all, "TimeoutStopSec").expect("TimeoutStopSec in the unit"));
    assert!(
        stop >= drain as u64 + 10,
        "TimeoutStopSec={stop}s leaves too little room for a {drain} s drain"
    );
}

#[test]
fn the_example_config_names_every_key_and_a_node_starts_from_it() {
    let toml_text = read("deploy/gateway.toml");
    let keys = file_config_keys();
    let lines: Vec<KeyLine> = toml_text.lines().filter_map(key_line).collect();
    for key in &keys {
        let n = lines.iter().filter(|l| key.is(&l.key)).count();
        let name = &key.name;
        assert_eq!(
            n, 1,
            "deploy/gateway.toml must show the key `{name}` of struct FileConfig once \
             (as `{name} = ...` or `#{name} = ...`, documented), found {n}"
        );
    }
    for line in &lines {
        assert!(
            keys.iter().any(|k| k.is(&line.key)),
            "deploy/gateway.toml has `{}`, which struct FileConfig does not accept",
            line.key
        );
    }
    assert!(
        lines.iter().any(|l| !l.commented) && lines.iter().any(|l| l.commented),
        "some keys set, some left at their defaults"
    );
    // Every key is documented: a comment right above it.
    let all: Vec<&str> = toml_text.lines().collect();
    for (i, line) in all.iter().enumerate() {
        if let Some(k) = key_line(line) {
            assert!(
                i > 0 && all[i - 1].starts_with("# "),
                "`{}` in deploy/gateway.toml has no comment above it",
                k.key
            );
        }
    }

    // The file as an operator would use it, every key set, pointed at
    // scratch places: a node starts from it, and admin commands find the
    // store it made.
    let dir = TempDir::new("deploy-config");
    let data_dir = dir.path().join("data");
    let store_dir = dir.path().join("store");
    std::fs::create_dir_all(&store_dir).unwrap();
    let store = format!("sqlite:{}", store_dir.join("gateway.db").display());
    // A web certificate of its own, for a name the node's clients do not
    // use.
    let web_key = rcgen::KeyPair::generate().unwrap();
    let web = rcgen::CertificateParams::new(vec!["web.example.test".to_owned()])
        .unwrap()
        .self_signed(&web_key)
        .unwrap();
    let (web_cert_file, web_key_file) = (dir.path().join("web.pem"), dir.path().join("web.key"));
    std::fs::write(&web_cert_file, web.pem()).unwrap();
    std::fs::write(&web_key_file, web_key.serialize_pem()).unwrap();
    let quoted = |s: &str| toml::Value::String(s.to_owned()).to_string();
    let text = uncommented(
        &toml_text,
        &keys,
        &[
            ("data_dir", quoted(data_dir.to_str().unwrap())),
            ("store", quoted(&store)),
            ("listen", quoted("127.0.0.1:0")),
            ("stun_listen", quoted("off")),
            ("health_listen", quoted("off")),
            ("web_cert", quoted(web_cert_file.to_str().unwrap())),
            ("web_key", quoted(web_key_file.to_str().unwrap())),
        ],
    );
    let config: toml::Table = toml::from_str(&text)
        .unwrap_or_else(|e| panic!("deploy/gateway.toml uncommented is not TOML: {e}\n{text}"));
    for key in &keys {
        assert!(
            config.keys().any(|k| key.is(k)),
            "{} missing after uncommenting",
            key.name
        );
    }
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, &text).unwrap();
    let path = path.to_str().unwrap();

    // The launcher also passes --data-dir and --listen, with the same
    // values; STUN, health and the store come from the file alone.
    let launched = GatewayLaunch::new(env!("CARGO_BIN_EXE_gateway"), &data_dir)
        .args(&["--config", path])
        .log(GatewayLog::File {
            path: dir.path().join("gateway.log"),
            level: Some("info".into()),
        })
        .spawn()
        .unwrap_or_else(|e| panic!("gateway serve with deploy/gateway.toml: {e}\n{text}"));
    // Killed however the test ends, a failed assertion included.
    let child = KillOnDrop(launched.child);
    let mut stdout = launched.stdout;
    let banner = launched.banner;
    let said = banner.lines.join("\n");
    assert!(
        banner.stun.is_none() && banner.health.is_none(),
        "stun_listen and health_listen from the file: {said}"
    );
    let str_of = |key: &str| config.get(key).and_then(|v| v.as_str()).unwrap();
    for wanted in [
        format!("node {} listening on", str_of("node_name")),
        format!("(clients use {})", str_of("advertise")),
    ] {
        assert!(
            said.contains(&wanted),
            "{wanted:?} not in the banner: {said}"
        );
    }
    let where_ = stdout.wait_for("data directory: ");
    assert!(
        where_.contains(&format!("store: {store}")),
        "store from the file: {where_}"
    );
    let operator = std::fs::read_to_string(data_dir.join("operator.toml")).unwrap();
    assert!(
        operator.contains(str_of("operator_name")),
        "operator_name from the file: {operator}"
    );

    // Stopped as a crash would stop it: the store stays for the admin
    // command below, which finds it through the file alone.
    drop(child);

    let out = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(["--config", path, "admin", "technician", "list"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "gateway --config {path} admin technician list: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_containerfile_copies_every_workspace_member_and_exposes_the_ports() {
    let file = read("deploy/Containerfile");
    let manifest: toml::Table = toml::from_str(&read("Cargo.toml")).unwrap();
    let members = manifest["workspace"]["members"].as_array().unwrap();
    let copies: Vec<&str> = file
        .lines()
        .filter_map(|l| l.strip_prefix("COPY "))
        .filter(|l| !l.starts_with("--from"))
        .collect();
    assert!(
        copies.contains(&"Cargo.toml Cargo.lock ./"),
        "the Containerfile copies the workspace manifest and lock file"
    );
    for member in members {
        let m = member.as_str().unwrap();
        assert!(
            copies.contains(&format!("{m} {m}").as_str()),
            "the Containerfile does not copy the workspace member {m}/ (cargo --locked needs it)"
        );
    }
    for line in [
        "RUN cargo build --release --locked --bin gateway",
        "    && cargo build --profile applet --locked --bin applet",
        "FROM docker.io/library/debian:bookworm-slim",
        "VOLUME /var/lib/lifeline-gateway",
        "EXPOSE 8443/tcp 3478/udp 3479/udp",
        "USER lifeline",
    ] {
        assert!(
            file.lines().any(|l| l == line),
            "{line:?} not in deploy/Containerfile"
        );
    }
    // The ports it exposes are the gateway's defaults (STUN and its
    // alternate port, the next one).
    assert!(CONFIG_RS.contains("SocketAddr::from(([0, 0, 0, 0], 8443))"));
    assert!(CONFIG_RS.contains("Ipv4Addr::UNSPECIFIED), 3478)"));
}
