//! `scripts/install.sh` into a staging directory (DESTDIR), twice: everything lands where an
//! operator expects it, the unit names the installed binary, and a second install keeps the
//! config and the secret the operator already has.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use synwall_testkit::synwall;

fn install(dest: &Path) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new("bash")
        .arg(root.join("scripts/install.sh"))
        .env("DESTDIR", dest)
        .env("PREFIX", "/usr/local")
        .env("SYNWALL_BIN", synwall())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn install_stages_everything_and_keeps_what_exists() {
    let d = tempfile::tempdir().unwrap();
    let dest = d.path();
    install(dest);
    for f in [
        "usr/local/bin/synwall",
        "etc/synwall/synwall.toml",
        "etc/synwall/secret",
        "etc/systemd/system/synwall.service",
        "usr/local/share/man/man1/synwall.1",
        "usr/local/share/man/man1/synwall-run.1",
        "usr/local/share/man/man1/synwall-status.1",
        "usr/local/share/bash-completion/completions/synwall",
        "usr/local/share/zsh/site-functions/_synwall",
        "usr/local/share/fish/vendor_completions.d/synwall.fish",
    ] {
        assert!(dest.join(f).is_file(), "{f} not installed");
    }
    let unit = std::fs::read_to_string(dest.join("etc/systemd/system/synwall.service")).unwrap();
    assert!(
        unit.contains("ExecStart=/usr/local/bin/synwall run --config /etc/synwall/synwall.toml")
    );
    let secret = dest.join("etc/synwall/secret");
    let s = std::fs::read_to_string(&secret).unwrap();
    assert!(
        s.trim().len() == 64 && s.trim().bytes().all(|b| b.is_ascii_hexdigit()),
        "{s:?}"
    );
    assert_eq!(
        std::fs::metadata(&secret).unwrap().permissions().mode() & 0o077,
        0,
        "the secret is readable by others"
    );
    // The operator edits the config; a reinstall (an upgrade) keeps both files.
    let cfg = dest.join("etc/synwall/synwall.toml");
    std::fs::write(&cfg, "# mine\n").unwrap();
    let second = install(dest);
    assert!(second.contains("keeping the existing"), "{second}");
    assert_eq!(std::fs::read_to_string(&cfg).unwrap(), "# mine\n");
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), s);
    assert!(dest.join("etc/synwall/synwall.toml.example").is_file());
}
