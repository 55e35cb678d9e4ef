//! Packaging: the `.deb` that `make deb` builds (here from the binary under test, not
//! compressed), installed into a throwaway root with `dpkg-deb -x`: its files, control and
//! maintainer scripts, its systemd unit through `systemd-analyze verify` where that exists,
//! and the packaged `/etc/imi-node/node.toml` passing `config check` once a node's keys are
//! beside it. And the node under systemd's notification protocol: `READY=1` once it
//! serves, `WATCHDOG=1` pings at half `WATCHDOG_USEC`, `STOPPING=1` on SIGTERM.
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use imi_e2e::{Federation, NodeProc, node_bin};

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn which(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `systemd-analyze verify` on `unit`: its complaints (empty when the unit is clean).
fn analyze(unit: &Path) -> String {
    let (_, out) = run(Command::new("systemd-analyze").arg("verify").arg(unit));
    out.trim().to_string()
}

#[test]
fn the_deb_installs_into_a_throwaway_root_and_its_unit_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let (ok, out) = run(Command::new(repo("scripts/deb.sh"))
        .arg(node_bin())
        .arg(tmp.path().join("out"))
        .env("IMI_DEB_COMPRESSION", "none"));
    assert!(ok, "scripts/deb.sh failed:\n{out}");
    let deb = PathBuf::from(out.trim().lines().last().unwrap());
    assert!(deb.is_file(), "{out}");

    // The control fields and the conffile.
    let (ok, fields) = run(Command::new("dpkg-deb")
        .args(["-f"])
        .arg(&deb)
        .args(["Package", "Version", "Depends"]));
    assert!(ok, "{fields}");
    assert!(fields.contains("Package: imi-node"), "{fields}");
    assert!(fields.contains("Version: 0.1.0"), "{fields}");
    assert!(fields.contains("adduser"), "{fields}");
    let (ok, listing) = run(Command::new("dpkg-deb").arg("-c").arg(&deb));
    assert!(ok, "{listing}");
    assert!(
        listing
            .lines()
            .filter(|l| l.contains("./usr/") || l.contains("./etc/"))
            .all(|l| l.contains("root/root")),
        "every file is root's:\n{listing}"
    );

    // Installed into a throwaway root.
    let root = tmp.path().join("root");
    let (ok, out) = run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root));
    assert!(ok, "{out}");
    let ctrl = tmp.path().join("control");
    let (ok, out) = run(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&ctrl));
    assert!(ok, "{out}");
    assert_eq!(
        std::fs::read_to_string(ctrl.join("conffiles")).unwrap(),
        "/etc/imi-node/node.toml\n"
    );
    for script in ["postinst", "prerm", "postrm"] {
        let p = ctrl.join(script);
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o755,
            "{script}"
        );
        let (ok, out) = run(Command::new("sh").arg("-n").arg(&p));
        assert!(ok, "{script}: {out}");
    }
    let postrm = std::fs::read_to_string(ctrl.join("postrm")).unwrap();
    assert!(
        postrm.contains("\"$1\" = \"purge\"") && postrm.contains("rm -rf /var/lib/imi-node"),
        "only purge deletes the data: {postrm}"
    );
    let bin = root.join("usr/bin/imi-node");
    let (ok, out) = run(Command::new(&bin).arg("--version"));
    assert!(ok && out.starts_with("imi-node 0.1.0"), "{out}");
    for f in [
        "usr/share/imi-node/catalogue/languages.toml",
        "usr/share/imi-node/vocabularies/professions.toml",
        "usr/share/imi-node/directory/authorities.toml",
        "usr/share/imi-node/grafana/imi-node.json",
        "usr/share/doc/imi-node/operations.md",
        "usr/share/doc/imi-node/configuration.md",
    ] {
        assert!(root.join(f).is_file(), "{f} is not in the package");
    }

    // The unit: Type=notify with a watchdog, its own user, state directory, sandboxing.
    let unit_path = root.join("lib/systemd/system/imi-node.service");
    let unit = std::fs::read_to_string(&unit_path).unwrap();
    for line in [
        "Type=notify",
        "WatchdogSec=",
        "User=imi-node",
        "StateDirectory=imi-node",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "TimeoutStopSec=",
        "ExecStartPre=/usr/bin/imi-node config check --config /etc/imi-node/node.toml",
    ] {
        assert!(unit.contains(line), "the unit lacks {line}");
    }
    if which("systemd-analyze") {
        // verify needs the binaries where the unit names them: point it at the root's.
        let units = tmp.path().join("units");
        std::fs::create_dir_all(&units).unwrap();
        let here = units.join("imi-node.service");
        std::fs::write(
            &here,
            unit.replace("/usr/bin/imi-node", bin.to_str().unwrap()),
        )
        .unwrap();
        assert_eq!(analyze(&here), "", "systemd-analyze verify complains");
        // The check can fail: a wrong value is reported.
        std::fs::write(
            &here,
            format!(
                "{}\n[Service]\nProtectSystem=bogus\n",
                unit.replace("/usr/bin/imi-node", bin.to_str().unwrap())
            ),
        )
        .unwrap();
        assert!(analyze(&here).contains("ProtectSystem") || analyze(&here).contains("protect"));
    } else {
        eprintln!("systemd-analyze is not installed: the unit's verification is skipped");
    }

    // The packaged config, with a node's keys beside it (as the operator docs say), passes
    // every check of `config check` run by the packaged binary.
    let fed = Federation::init(&["AT"]);
    let etc = tmp.path().join("etc");
    std::fs::create_dir_all(etc.join("var")).unwrap();
    for f in [
        "identity.key",
        "hpke.key",
        "data.key",
        "operator.token",
        "tls.key",
        "tls.crt",
    ] {
        std::fs::copy(fed.node_dir("AT").join(f), etc.join(f)).unwrap();
    }
    for f in ["ca.crt", "trust-list.cbor", "governance.pub"] {
        std::fs::copy(fed.root().join(f), etc.join(f)).unwrap();
    }
    let packaged = std::fs::read_to_string(root.join("etc/imi-node/node.toml")).unwrap();
    let config = packaged
        .replace(
            "/usr/share/imi-node",
            root.join("usr/share/imi-node").to_str().unwrap(),
        )
        .replace("/var/lib/imi-node", etc.join("var").to_str().unwrap())
        .replace(
            "0.0.0.0:47001",
            &format!("127.0.0.1:{}", fed.http_port("AT")),
        )
        .replace(
            "/ip4/0.0.0.0/tcp/47000",
            &format!("/ip4/127.0.0.1/tcp/{}", fed.p2p_port("AT")),
        );
    assert_ne!(config, packaged);
    std::fs::write(etc.join("node.toml"), config).unwrap();
    let (ok, out) = run(Command::new(&bin)
        .args(["config", "check", "--config"])
        .arg(etc.join("node.toml")));
    assert!(ok && !out.contains("FAIL"), "{out}");
}

/// Waits for datagrams on `sock` until `done` holds for what arrived (guard: 60 s).
fn receive_until(sock: &UnixDatagram, got: &mut Vec<String>, done: impl Fn(&[String]) -> bool) {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    while !done(got) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "notifications so far: {got:?}"
        );
        if let Ok(n) = sock.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
}

#[test]
fn under_systemd_the_node_notifies_ready_pings_the_watchdog_and_notifies_stopping() {
    let fed = Federation::init(&["DE"]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let node = NodeProc::start_env(
        &fed,
        "DE",
        &[
            ("NOTIFY_SOCKET", path.to_str().unwrap()),
            ("WATCHDOG_USEC", "200000"),
        ],
    );
    let mut got = Vec::new();
    let count = |got: &[String], what: &str| got.iter().filter(|m| m.contains(what)).count();
    receive_until(&sock, &mut got, |g| {
        count(g, "READY=1") == 1 && count(g, "WATCHDOG=1") >= 2
    });
    let ready = got.iter().position(|m| m.contains("READY=1")).unwrap();
    assert!(got[ready].contains("STATUS=serving as DE"), "{got:?}");
    node.signal("TERM");
    receive_until(&sock, &mut got, |g| count(g, "STOPPING=1") == 1);
    let st = node.wait_exit(Duration::from_secs(60));
    assert!(st.success(), "{st}");
}

/// The node re-executes itself with its allocators' settings (`MALLOC_ARENA_MAX=2` and
/// `MALLOC_MMAP_THRESHOLD_=131072` for glibc's, `MIMALLOC_PURGE_DELAY=0` and `MIMALLOC_ARENA_EAGER_COMMIT=0` for mimalloc's;
/// BENCHMARKS.md), keeping its process id, each unless the operator set it.
#[test]
fn the_node_sets_its_allocators_unless_the_operator_chose() {
    let fed = Federation::init(&["DE", "HU"]);
    let environ = |node: &NodeProc| {
        let raw = std::fs::read(format!("/proc/{}/environ", node.pid())).unwrap();
        let mut vars: Vec<String> = raw
            .split(|b| *b == 0)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .filter(|v| v.starts_with("MALLOC_") || v.starts_with("MIMALLOC_"))
            .collect();
        vars.sort();
        vars
    };
    let de = fed.start("DE");
    assert_eq!(
        environ(&de),
        [
            "MALLOC_ARENA_MAX=2",
            "MALLOC_MMAP_THRESHOLD_=131072",
            "MIMALLOC_ARENA_EAGER_COMMIT=0",
            "MIMALLOC_PURGE_DELAY=0"
        ]
    );
    let hu = NodeProc::start_env(
        &fed,
        "HU",
        &[
            ("MALLOC_ARENA_MAX", "4"),
            ("MALLOC_MMAP_THRESHOLD_", "262144"),
            ("MIMALLOC_PURGE_DELAY", "10"),
        ],
    );
    assert_eq!(
        environ(&hu),
        [
            "MALLOC_ARENA_MAX=4",
            "MALLOC_MMAP_THRESHOLD_=262144",
            "MIMALLOC_ARENA_EAGER_COMMIT=0",
            "MIMALLOC_PURGE_DELAY=10"
        ]
    );
}
