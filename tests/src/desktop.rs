//! A desktop of its own for a test: an X server without a screen (Xvfb),
//! a D-Bus session and the accessibility bus on it. A window is read and
//! driven through its accessibility tree (`tests/window/a11y.py`, AT-SPI,
//! as a screen reader does), typed into with xdotool, and photographed
//! with ImageMagick's `import`.

use crate::TempDir;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One node of a window's accessibility tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Its role (`push button`, `label`, `entry`, `progress bar`, …).
    pub role: String,
    /// Its accessible name (a button's or a label's text).
    pub name: String,
    /// Its text (a text box's content).
    pub text: String,
}

/// Xvfb, D-Bus and the accessibility bus, stopped on drop.
#[derive(Debug)]
pub struct Desktop {
    display: String,
    bus: String,
    children: Vec<Child>,
    /// The desktop's own runtime folder (`XDG_RUNTIME_DIR`): the
    /// accessibility bus puts its socket there, not in the shared
    /// `~/.cache/at-spi`, where parallel desktops would remove each
    /// other's.
    runtime: TempDir,
}

/// The tools a desktop test needs, with the Debian package of each.
const TOOLS: [(&str, &str); 6] = [
    ("Xvfb", "xvfb"),
    ("dbus-daemon", "dbus"),
    ("xdotool", "xdotool"),
    ("import", "imagemagick"),
    ("dbus-send", "dbus-bin"),
    ("/usr/libexec/at-spi-bus-launcher", "at-spi2-core"),
];

fn on_path(tool: &str) -> bool {
    if tool.starts_with('/') {
        return Path::new(tool).exists();
    }
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).exists()))
}

/// Starts `cmd` (kept in `children`) and reads the first line it prints.
fn first_line(children: &mut Vec<Child>, cmd: &mut Command) -> String {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let mut out = child.stdout.take().unwrap();
    children.push(child);
    let mut line = String::new();
    let mut byte = [0u8; 1];
    while out.read(&mut byte).unwrap_or(0) == 1 && byte[0] != b'\n' {
        line.push(byte[0] as char);
    }
    line
}

impl Desktop {
    /// Starts a desktop; panics with what to install when a tool is
    /// missing (`.ci/run` installs them all).
    pub fn start() -> Desktop {
        let missing: Vec<&str> = TOOLS
            .iter()
            .filter(|(t, _)| !on_path(t))
            .map(|(_, pkg)| *pkg)
            .collect();
        assert!(
            missing.is_empty() && Path::new("/usr/bin/python3").exists(),
            "the window tests need a virtual desktop: apt-get install {} python3-pyatspi",
            missing.join(" ")
        );
        let runtime = TempDir::new("desktop");
        std::fs::set_permissions(
            runtime.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap();
        let mut children = Vec::new();
        // Xvfb picks a free display and writes its number to the pipe.
        let number = first_line(
            &mut children,
            Command::new("Xvfb").args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                "1024x768x24",
                "-nolisten",
                "tcp",
            ]),
        );
        assert!(!number.is_empty(), "Xvfb gave no display number");
        let display = format!(":{}", number.trim());
        // A session bus of our own. It starts a service a client asks for
        // by name with its own environment: were the accessibility bus
        // asked for before our launcher below took its name, the launcher
        // it starts must also put its socket in this desktop's folder (in
        // the shared `~/.cache/at-spi` a parallel desktop removes it).
        let bus = first_line(
            &mut children,
            Command::new("dbus-daemon")
                .args(["--session", "--nofork", "--print-address=1"])
                .env("XDG_RUNTIME_DIR", runtime.path())
                .env("DISPLAY", format!(":{}", number.trim())),
        );
        assert!(!bus.is_empty(), "dbus-daemon gave no address");
        // In a process group of its own: it starts the accessibility bus
        // and its registry, which go with it on drop.
        let atspi = Command::new("/usr/libexec/at-spi-bus-launcher")
            .arg("--launch-immediately")
            .env("XDG_RUNTIME_DIR", runtime.path())
            .process_group(0)
            .env("DISPLAY", &display)
            .env("DBUS_SESSION_BUS_ADDRESS", &bus)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("at-spi-bus-launcher");
        children.push(atspi);
        let d = Desktop {
            display,
            bus,
            children,
            runtime,
        };
        // Programs build their accessibility tree only when a screen
        // reader is said to run.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !d.screen_reader(true) {
            assert!(
                Instant::now() < deadline,
                "the accessibility bus did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        d
    }

    /// Says that a screen reader runs (or not): programs build their
    /// accessibility tree while one does. Whether the bus took it.
    fn screen_reader(&self, on: bool) -> bool {
        ["IsEnabled", "ScreenReaderEnabled"].iter().all(|property| {
            Command::new("dbus-send")
                .args([
                    "--session",
                    "--print-reply",
                    "--dest=org.a11y.Bus",
                    "/org/a11y/bus",
                    "org.freedesktop.DBus.Properties.Set",
                    "string:org.a11y.Status",
                    &format!("string:{property}"),
                    &format!("variant:boolean:{on}"),
                ])
                .env("DBUS_SESSION_BUS_ADDRESS", &self.bus)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
    }

    /// Sets the desktop's environment on `cmd` (the program then opens its
    /// window here).
    pub fn env<'a>(&self, cmd: &'a mut Command) -> &'a mut Command {
        cmd.env("DISPLAY", &self.display)
            .env("DBUS_SESSION_BUS_ADDRESS", &self.bus)
            .env("NO_AT_BRIDGE", "0")
            .env("LIFELINE_NO_WINDOW", "0")
            .env("XDG_RUNTIME_DIR", self.runtime.path())
    }

    fn helper(&self, args: &[&str]) -> std::process::Output {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("window/a11y.py");
        let mut cmd = Command::new("/usr/bin/python3");
        cmd.arg(script).args(args);
        self.env(&mut cmd);
        crate::run_bounded(&mut cmd, Duration::from_secs(30))
    }

    /// The accessibility tree of `pid`'s window (empty while it has none).
    pub fn tree(&self, pid: u32) -> Vec<Node> {
        let out = self.helper(&["dump", &pid.to_string()]);
        if !out.status.success() {
            eprintln!(
                "a11y dump of {pid}: {} {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| {
                let mut f = l.splitn(3, '\t');
                Node {
                    role: f.next().unwrap_or("").to_owned(),
                    name: f.next().unwrap_or("").to_owned(),
                    text: f.next().unwrap_or("").to_owned(),
                }
            })
            .collect()
    }

    /// Waits until a node of `pid`'s window shows `needle` (in its name or
    /// text); returns the tree then.
    pub fn wait_for_text(&self, pid: u32, needle: &str, within: Duration) -> Vec<Node> {
        let start = Instant::now();
        let deadline = start + within;
        let mut nudged = false;
        loop {
            let tree = self.tree(pid);
            // A program that came up while the accessibility bus was busy
            // may have missed that a screen reader runs: say it again.
            if tree.is_empty() && !nudged && start.elapsed() > Duration::from_secs(5) {
                nudged = true;
                self.screen_reader(false);
                self.screen_reader(true);
            }
            if tree
                .iter()
                .any(|n| n.name.contains(needle) || n.text.contains(needle))
            {
                return tree;
            }
            assert!(
                Instant::now() < deadline,
                "the window never showed {needle:?} (window mapped: {}); it shows:\n{}",
                self.has_window(pid),
                tree.iter()
                    .map(|n| format!("  {} {:?} {:?}", n.role, n.name, n.text))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Presses the button named `name` in `pid`'s window (waiting for it).
    pub fn press(&self, pid: u32, name: &str) {
        let deadline = Instant::now() + crate::WAIT;
        loop {
            let out = self.helper(&["press", &pid.to_string(), name]);
            if out.status.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no button {name:?}; the window shows {:?}",
                self.tree(pid)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Types `text` and Enter into the text box labelled `label`.
    pub fn type_into(&self, pid: u32, label: &str, text: &str) {
        let out = self.helper(&["focus", &pid.to_string(), label]);
        assert!(out.status.success(), "no text box {label:?}: {out:?}");
        // Without a window manager the keyboard goes where X's focus is:
        // put it on the window first.
        let pid = pid.to_string();
        let focus = vec![
            "search",
            "--onlyvisible",
            "--pid",
            &pid,
            ".",
            "windowfocus",
            "--sync",
            "%1",
        ];
        for args in [
            focus,
            vec!["type", "--delay", "20", text],
            vec!["key", "Return"],
        ] {
            let mut cmd = Command::new("xdotool");
            cmd.args(&args);
            self.env(&mut cmd);
            let out = crate::run_bounded(&mut cmd, Duration::from_secs(30));
            assert!(out.status.success(), "xdotool {args:?}: {out:?}");
        }
    }

    /// Closes `pid`'s window as a window manager's close button does.
    pub fn close_window(&self, pid: u32) {
        let out = self.helper(&["close", &pid.to_string()]);
        assert!(out.status.success(), "no window of {pid} to close: {out:?}");
    }

    /// Whether `pid` has a visible window (mapped on the X server).
    pub fn has_window(&self, pid: u32) -> bool {
        let mut cmd = Command::new("xdotool");
        cmd.args(["search", "--onlyvisible", "--pid", &pid.to_string(), "."]);
        self.env(&mut cmd);
        crate::run_bounded(&mut cmd, Duration::from_secs(30))
            .status
            .success()
    }

    /// Starts `program` with `args` on this desktop and returns the
    /// milliseconds until its first window is mapped (from the X server's
    /// MapNotify event), then stops it.
    pub fn map_time_ms(&self, program: &Path, args: &[&str], env: &[(&str, &str)]) -> Option<f64> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("window/a11y.py");
        let mut cmd = Command::new("/usr/bin/python3");
        cmd.arg(script).arg("maptime").arg(program).args(args);
        self.env(&mut cmd);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = crate::run_bounded(&mut cmd, Duration::from_secs(60));
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    }

    /// Saves a picture of the whole screen to `path` (PNG).
    pub fn screenshot(&self, path: &Path) -> PathBuf {
        let mut cmd = Command::new("import");
        cmd.args(["-window", "root"]).arg(path);
        self.env(&mut cmd);
        let out = crate::run_bounded(&mut cmd, Duration::from_secs(30));
        assert!(out.status.success(), "import: {out:?}");
        path.to_owned()
    }
}

impl Drop for Desktop {
    fn drop(&mut self) {
        if let Some(launcher) = self.children.get(2) {
            let _ = Command::new("kill")
                .args(["-TERM", "--", &format!("-{}", launcher.id())])
                .status();
        }
        for c in self.children.iter_mut().rev() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
