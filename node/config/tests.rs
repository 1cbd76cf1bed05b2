use super::*;

/// A folder with empty files where the TLS paths point; the config check only needs
/// them to exist (the node reads them when it starts).
fn folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in ["ca.pem", "cert.pem", "key.pem", "crl.pem"] {
        std::fs::write(dir.path().join(f), "").unwrap();
    }
    dir
}

const GOOD: &str = r#"
region = "211382"
name = "凌源市公共信用信息平台"
listen = "127.0.0.1:7443"
data_dir = "data"

[tls]
ca = "ca.pem"
cert = "cert.pem"
key = "key.pem"
crl = "crl.pem"

[[providers]]
id = "lingyuan-tax"
name = "国家税务总局凌源市税务局"
categories = ["tax"]
"#;

#[test]
fn a_good_config_resolves_paths_against_its_folder() {
    let dir = folder();
    let c = Config::from_toml(GOOD, dir.path()).unwrap();
    assert_eq!(c.region.as_str(), "211382");
    assert_eq!(c.data_dir, dir.path().join("data"));
    assert_eq!(c.tls.crl, Some(dir.path().join("crl.pem")));
    assert_eq!(c.provider("lingyuan-tax").unwrap().categories, vec!["tax"]);
}

fn refused(text: &str) -> ConfigError {
    let dir = folder();
    Config::from_toml(text, dir.path()).unwrap_err()
}

/// For each `(from, to, key)`: `text` with `from` replaced by `to` is refused, naming `key`.
fn assert_each_refused(text: &str, cases: &[(&str, &str, &str)]) {
    for (from, to, key) in cases {
        assert_eq!(refused(&text.replace(from, to)).key, *key, "{from} -> {to}");
    }
}

#[test]
fn each_bad_key_is_named() {
    assert_each_refused(
        GOOD,
        &[
            ("211382", "2113", "region"),
            ("127.0.0.1:7443", "nowhere", "listen"),
            ("\"ca.pem\"", "\"missing.pem\"", "tls.ca"),
            ("[\"tax\"]", "[\"taxes\"]", "providers[0].categories"),
            ("[\"tax\"]", "[]", "providers[0].categories"),
            ("lingyuan-tax", "lingyuan tax", "providers[0].id"),
        ],
    );
    let twice = format!(
        "{GOOD}\n[[providers]]\nid = \"lingyuan-tax\"\nname = \"x\"\ncategories = [\"tax\"]\n"
    );
    assert_eq!(refused(&twice).key, "providers[1].id");
    let bad_uscc = GOOD.replace(
        "categories = [\"tax\"]",
        "categories = [\"tax\"]\nuscc = \"91110000600037341A\"",
    );
    assert_eq!(refused(&bad_uscc).key, "providers[0].uscc");
}

#[test]
fn wrong_types_name_their_key_and_legacy_codes_are_checked() {
    assert_each_refused(
        GOOD,
        &[
            ("\"211382\"", "211382", "region"),
            (
                "crl = \"crl.pem\"",
                "crl = \"crl.pem\"\ncrl_reload_secs = -1",
                "tls.crl_reload_secs",
            ),
        ],
    );
    let with_legacy = |code: &str| {
        GOOD.replace(
            "data_dir = \"data\"",
            &format!("data_dir = \"data\"\nlegacy_codes = [{code:?}]"),
        )
    };
    assert_eq!(refused(&with_legacy("9135-0100")).key, "legacy_codes[0]");
    let dir = folder();
    let c = Config::from_toml(&with_legacy(" 91350100m0001tgqxm "), dir.path()).unwrap();
    assert_eq!(c.legacy_codes, vec!["91350100M0001TGQXM"]);
}

/// A value of the wrong type, an unknown or a missing key below the top level is named by
/// its full path, tables and array indices included.
#[test]
fn a_shape_error_in_a_nested_table_names_the_full_path() {
    let e = refused(&format!("{GOOD}\n[store]\ncache_mb = \"lots\"\n"));
    assert_eq!(e.key, "store.cache_mb", "{e}");
    assert!(e.to_string().contains("config key `store.cache_mb`"), "{e}");
    assert_eq!(
        refused(&format!("{GOOD}\n[connections]\nidle_secs = -1\n")).key,
        "connections.idle_secs"
    );
    assert_eq!(
        refused(&GOOD.replace("categories = [\"tax\"]", "categories = [\"tax\", 7]")).key,
        "providers[0].categories[1]"
    );
    assert_eq!(
        refused(&GOOD.replace(
            "categories = [\"tax\"]",
            "categories = [\"tax\"]\nphone = 1"
        ))
        .key,
        "providers[0].phone"
    );
    assert_eq!(
        refused(&GOOD.replace("id = \"lingyuan-tax\"\n", "")).key,
        "providers[0].id"
    );
    assert_eq!(
        refused(&GOOD.replace("crl = \"crl.pem\"", "crl = 5")).key,
        "tls.crl"
    );
}

#[test]
fn unknown_and_missing_keys_are_refused() {
    let e = refused(&GOOD.replace(
        "data_dir = \"data\"",
        "data_dir = \"data\"\nlisten_port = 1",
    ));
    assert!(e.reason.contains("listen_port"), "{e}");
    let e = refused(&GOOD.replace("data_dir = \"data\"\n", ""));
    assert!(e.reason.contains("data_dir"), "{e}");
}

/// The example configs in deploy/ stay valid as the config format moves.
#[test]
fn the_deploy_examples_load() {
    let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    for name in ["lingyuan.toml", "chaoyang.toml", "liaoning.toml"] {
        let text = std::fs::read_to_string(deploy.join(name)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        for node in ["lingyuan", "chaoyang", "liaoning"] {
            std::fs::create_dir_all(dir.path().join("pki").join(node)).unwrap();
            for f in ["cert.pem", "key.pem"] {
                std::fs::write(dir.path().join("pki").join(node).join(f), "").unwrap();
            }
        }
        for f in ["ca.pem", "crl.pem"] {
            std::fs::write(dir.path().join("pki").join(f), "").unwrap();
        }
        let c = Config::from_toml(&text, dir.path()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!c.providers.is_empty(), "{name}");
    }
}

#[test]
fn topology_keys() {
    let dir = folder();
    let city = GOOD.replace("region = \"211382\"", "region = \"211300\"")
        + "\n[parent]\nregion = \"210000\"\nendpoint = \"https://127.0.0.1:7444\"\n\n[[children]]\nregion = \"211382\"\n";
    let c = Config::from_toml(&city, dir.path()).unwrap();
    assert_eq!(c.parent.as_ref().unwrap().region.as_str(), "210000");
    assert_eq!(c.children[0].region.as_str(), "211382");
    // A child outside the region by its code, unless marked as an exception.
    let outside = city.replace("region = \"211382\"\n", "region = \"210102\"\n");
    assert_eq!(refused(&outside).key, "children[0].region");
    let excepted = outside.replace(
        "region = \"210102\"\n",
        "region = \"210102\"\nexception = true\n",
    );
    assert!(Config::from_toml(&excepted, dir.path()).is_ok());
    assert_eq!(
        refused(&city.replace("\"210000\"", "\"211300\"")).key,
        "parent.region"
    );
    let twice = format!("{city}\n[[children]]\nregion = \"211382\"\n");
    assert_eq!(refused(&twice).key, "children[1].region");
}

#[test]
fn provider_contacts_and_the_audit_interval() {
    let dir = folder();
    let with = GOOD.replace(
        "categories = [\"tax\"]",
        "categories = [\"tax\"]\ngovernment = true\nleader = { name = \"王局长\", title = \"局长\", mobile = \"13900000001\" }\nliaison = { name = \"李联络\", mobile = \"13900000002\" }",
    ) + "\n[audit]\ncheckpoint_secs = 30\n";
    let c = Config::from_toml(&with, dir.path()).unwrap();
    let p = c.provider("lingyuan-tax").unwrap();
    assert!(p.government);
    assert_eq!(
        p.contacts.iter().map(|c| c.role).collect::<Vec<_>>(),
        ["leader", "liaison"]
    );
    assert_eq!(p.contacts[1].mobile, "13900000002");
    assert_eq!(c.checkpoint_every, Duration::from_secs(30));
    assert_each_refused(
        &with,
        &[
            ("13900000002", "1390000", "providers[0].liaison.mobile"),
            (
                "checkpoint_secs = 30",
                "checkpoint_secs = 0",
                "audit.checkpoint_secs",
            ),
        ],
    );
}

#[test]
fn the_calendar_publication_table_and_purge_interval() {
    let dir = folder();
    let c = Config::from_toml(GOOD, dir.path()).unwrap();
    assert!(c.calendar.covers(2026));
    assert!(
        c.publication
            .in_force(chrono::NaiveDate::from_ymd_opt(2026, 11, 28).unwrap())
            .is_some()
    );
    assert_eq!(c.purge_every, Duration::from_secs(3600));
    std::fs::write(
        dir.path().join("cal.toml"),
        "[[year]]\nyear = 2027\noff = [\"2027-01-01\"]\n",
    )
    .unwrap();
    let with = format!("calendar = \"cal.toml\"\n{GOOD}\n[retention]\npurge_secs = 60\n");
    let c = Config::from_toml(&with, dir.path()).unwrap();
    assert!(c.calendar.covers(2027) && c.calendar.covers(2026));
    assert_eq!(c.purge_every, Duration::from_secs(60));
    assert_eq!(
        Config::from_toml(
            &with.replace("purge_secs = 60", "purge_secs = 0"),
            dir.path()
        )
        .unwrap_err()
        .key,
        "retention.purge_secs"
    );
    std::fs::write(
        dir.path().join("cal.toml"),
        "[[year]]\nyear = 2027\noff = [\"soon\"]\n",
    )
    .unwrap();
    assert_eq!(
        Config::from_toml(&with, dir.path()).unwrap_err().key,
        "calendar"
    );
    let missing = format!("publication = \"none.toml\"\n{GOOD}");
    assert_eq!(refused(&missing).key, "publication");
}

#[test]
fn a_clock_moved_to_a_rehearsal_day() {
    let dir = folder();
    assert!(
        !Config::from_toml(GOOD, dir.path())
            .unwrap()
            .clock
            .is_moved()
    );
    let with = format!("{GOOD}\n[clock]\ntoday = \"2028-02-29\"\n");
    let c = Config::from_toml(&with, dir.path()).unwrap();
    assert_eq!(
        c.clock.today(),
        chrono::NaiveDate::from_ymd_opt(2028, 2, 29).unwrap()
    );
    assert_eq!(
        refused(&with.replace("2028-02-29", "2027-02-29")).key,
        "clock.today"
    );
}

#[test]
fn the_consent_term_limit_defaults_to_five_years_and_is_checked_r_rel_4() {
    let dir = folder();
    let c = Config::from_toml(GOOD, dir.path()).unwrap();
    assert_eq!(c.consent_max_term_years, 5);
    let with = format!("{GOOD}\n[consent]\nmax_term_years = 2\n");
    let c = Config::from_toml(&with, dir.path()).unwrap();
    assert_eq!(c.consent_max_term_years, 2);
    for bad in ["0", "31", "-1"] {
        let text = with.replace("max_term_years = 2", &format!("max_term_years = {bad}"));
        assert!(refused(&text).key.contains("max_term_years"), "{bad}");
    }
}

#[test]
fn connection_limits_have_defaults_and_are_checked() {
    let dir = folder();
    let c = Config::from_toml(GOOD, dir.path()).unwrap();
    assert_eq!(c.connections, ConnectionLimits::default());
    assert_eq!(c.connections.handshake_timeout, Duration::from_secs(5));
    assert_eq!(c.connections.preface_timeout, Duration::from_secs(10));
    assert_eq!(c.connections.idle_timeout, Duration::from_secs(300));
    assert_eq!(c.connections.max_handshakes, 256);
    assert_eq!(c.connections.max_connections, 1024);
    assert_eq!(c.connections.max_handshakes_per_ip, 16);
    assert_eq!(c.connections.max_connections_per_ip, 256);
    assert_eq!(c.connections.max_streams, 256);
    let with = format!(
        "{GOOD}\n[connections]\nhandshake_secs = 2\npreface_secs = 3\nidle_secs = 600\nmax_handshakes = 8\nmax_connections = 64\nmax_handshakes_per_ip = 2\nmax_connections_per_ip = 4\nmax_streams = 16\n"
    );
    let c = Config::from_toml(&with, dir.path()).unwrap();
    assert_eq!(
        c.connections,
        ConnectionLimits {
            handshake_timeout: Duration::from_secs(2),
            preface_timeout: Duration::from_secs(3),
            idle_timeout: Duration::from_secs(600),
            max_handshakes: 8,
            max_connections: 64,
            max_handshakes_per_ip: 2,
            max_connections_per_ip: 4,
            max_streams: 16,
        }
    );
    // Per-address caps above the global ones are lowered to them.
    let high = with
        .replace("max_handshakes_per_ip = 2", "max_handshakes_per_ip = 100")
        .replace("max_connections_per_ip = 4", "max_connections_per_ip = 100");
    let c = Config::from_toml(&high, dir.path()).unwrap();
    assert_eq!(c.connections.max_handshakes_per_ip, 8);
    assert_eq!(c.connections.max_connections_per_ip, 64);
    // (key, its value in `with`, a value out of range)
    for (name, good, bad) in [
        ("handshake_secs", "2", "0"),
        ("preface_secs", "3", "301"),
        ("max_handshakes", "8", "0"),
        ("max_handshakes", "8", "65"),
        ("max_streams", "16", "0"),
        ("idle_secs", "600", "0"),
        ("max_handshakes_per_ip", "2", "5"),
        ("max_connections_per_ip", "4", "0"),
    ] {
        let (from, to) = (format!("{name} = {good}\n"), format!("{name} = {bad}\n"));
        assert_eq!(
            refused(&with.replace(&from, &to)).key,
            format!("connections.{name}"),
            "{to}"
        );
    }
    assert_eq!(
        refused(&format!("{GOOD}\n[connections]\nidle_minutes = 5\n")).key,
        "connections.idle_minutes"
    );
}

/// The store's bounds (R-SEC-1): defaults, set, and out of range refused by key.
#[test]
fn the_store_call_and_open_bounds() {
    let dir = folder();
    let c = Config::from_toml(GOOD, dir.path()).unwrap();
    assert_eq!(c.store.call_timeout, Duration::from_secs(30));
    assert_eq!(c.store.open_timeout, Duration::from_secs(600));
    let with = format!("{GOOD}\n[store]\ncall_timeout_secs = 5\nopen_timeout_secs = 60\n");
    let c = Config::from_toml(&with, dir.path()).unwrap();
    assert_eq!(c.store.call_timeout, Duration::from_secs(5));
    assert_eq!(c.store.open_timeout, Duration::from_secs(60));
    assert_each_refused(
        &with,
        &[
            (
                "call_timeout_secs = 5",
                "call_timeout_secs = 0",
                "store.call_timeout_secs",
            ),
            (
                "open_timeout_secs = 60",
                "open_timeout_secs = 0",
                "store.open_timeout_secs",
            ),
        ],
    );
}
