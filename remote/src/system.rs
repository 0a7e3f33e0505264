//! What the machine is, for the technician: [`collect`] for the wire
//! ([`SystemInfo`]), [`table`] for a terminal.
//!
//! Every string the system gives is clamped ([`MAX_TEXT`] bytes) and every
//! list bounded, so a report always fits a work message. Strings are as
//! the system gave them (a process may name itself anything): whoever
//! shows them neutralizes them, as [`table`] does.

use lifeline_protocol::text::neutralize;
use lifeline_protocol::work::{Disk, Interface, Process, SystemInfo};
use std::fmt::Write as _;
use sysinfo::{
    CpuRefreshKind, Disks, Networks, ProcessRefreshKind, ProcessesToUpdate, System, UpdateKind,
    Users,
};

/// Longest string in a report, in bytes.
pub const MAX_TEXT: usize = 256;
/// Most disks in a report.
pub const MAX_DISKS: usize = 64;
/// Most interfaces in a report.
pub const MAX_INTERFACES: usize = 64;
/// Most addresses of one interface.
pub const MAX_ADDRESSES: usize = 16;
/// How many of the busiest processes a report lists.
pub const TOP_PROCESSES: usize = 10;

/// Describes the machine: OS and version, kernel, host name, uptime, CPU,
/// memory, disks, network interfaces, the current user, and the ten
/// busiest processes. CPU use is measured over sysinfo's minimum interval
/// (200 ms on Linux), since one sample says nothing; the reading runs on
/// tokio's blocking threads (it reads many small files).
pub async fn collect() -> SystemInfo {
    let first = tokio::task::spawn_blocking(|| {
        let mut sys = System::new();
        sys.refresh_processes_specifics(ProcessesToUpdate::All, true, process_kind());
        sys
    })
    .await;
    let Ok(mut sys) = first else {
        return SystemInfo::default();
    };
    tokio::time::sleep(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL).await;
    tokio::task::spawn_blocking(move || {
        sys.refresh_processes_specifics(ProcessesToUpdate::All, true, process_kind());
        describe(&mut sys)
    })
    .await
    .unwrap_or_default()
}

/// Processes without their threads (Linux lists those as processes too);
/// CPU and memory only.
fn process_kind() -> ProcessRefreshKind {
    ProcessRefreshKind::nothing()
        .with_cpu()
        .with_memory()
        .without_tasks()
}

/// The report, from `sys` with processes refreshed twice.
fn describe(sys: &mut System) -> SystemInfo {
    sys.refresh_memory();
    sys.refresh_cpu_list(CpuRefreshKind::nothing());

    let mut disks: Vec<Disk> = Disks::new_with_refreshed_list()
        .list()
        .iter()
        .map(|d| Disk {
            mount: clamp(&d.mount_point().to_string_lossy()),
            fs: clamp(&d.file_system().to_string_lossy()),
            total: d.total_space(),
            available: d.available_space(),
        })
        .collect();
    disks.sort_by(|a, b| a.mount.cmp(&b.mount));
    disks.truncate(MAX_DISKS);

    let mut interfaces: Vec<Interface> = Networks::new_with_refreshed_list()
        .list()
        .iter()
        .map(|(name, data)| Interface {
            name: clamp(name),
            addresses: data
                .ip_networks()
                .iter()
                .take(MAX_ADDRESSES)
                .map(|n| format!("{}/{}", n.addr, n.prefix))
                .collect(),
        })
        .collect();
    interfaces.sort_by(|a, b| a.name.cmp(&b.name));
    interfaces.truncate(MAX_INTERFACES);

    let mut processes: Vec<Process> = sys
        .processes()
        .values()
        .map(|p| Process {
            pid: p.pid().as_u32(),
            name: clamp(&p.name().to_string_lossy()),
            // Saturating float-to-int; NaN becomes 0.
            cpu_percent: p.cpu_usage().round() as u32,
            memory: p.memory(),
        })
        .collect();
    processes
        .sort_by(|a, b| (b.cpu_percent, b.memory, a.pid).cmp(&(a.cpu_percent, a.memory, b.pid)));
    processes.truncate(TOP_PROCESSES);

    let cpus = sys.cpus();
    SystemInfo {
        os: clamp(
            &System::long_os_version()
                .or_else(System::name)
                .unwrap_or_default(),
        ),
        kernel: clamp(&System::kernel_version().unwrap_or_default()),
        hostname: clamp(&System::host_name().unwrap_or_default()),
        uptime_secs: System::uptime(),
        cpu: clamp(cpus.first().map(|c| c.brand().trim()).unwrap_or_default()),
        cpus: u32::try_from(cpus.len()).unwrap_or(u32::MAX),
        memory_total: sys.total_memory(),
        memory_available: sys.available_memory(),
        disks,
        interfaces,
        user: clamp(&current_user(sys)),
        processes,
    }
}

/// The applet's user by its uid, else as the environment names it.
fn current_user(sys: &mut System) -> String {
    let by_uid = sysinfo::get_current_pid().ok().and_then(|me| {
        sys.refresh_processes_specifics(
            ProcessesToUpdate::Some(&[me]),
            false,
            ProcessRefreshKind::nothing().with_user(UpdateKind::Always),
        );
        let uid = sys.process(me)?.user_id()?;
        let users = Users::new_with_refreshed_list();
        users.get_user_by_id(uid).map(|u| u.name().to_owned())
    });
    by_uid
        .or_else(|| std::env::var("USER").ok())
        .or_else(|| std::env::var("USERNAME").ok())
        .unwrap_or_default()
}

/// `s` cut to at most [`MAX_TEXT`] bytes, on a character boundary.
fn clamp(s: &str) -> String {
    let mut end = s.len().min(MAX_TEXT);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// The report as a plain-text table for a terminal: one line per item,
/// human units, every string neutralized.
pub fn table(info: &SystemInfo) -> String {
    let mut t = String::new();
    let mut line = |label: &str, value: &str| {
        let _ = writeln!(t, "{label:<10} {value}");
    };
    let n = |s: &str| neutralize(s).into_owned();
    line("OS", &n(&info.os));
    line("Kernel", &n(&info.kernel));
    line("Host", &n(&info.hostname));
    line("Uptime", &duration(info.uptime_secs));
    line("CPU", &format!("{} x {}", n(&info.cpu), info.cpus));
    line(
        "Memory",
        &format!(
            "{} available of {}",
            bytes(info.memory_available),
            bytes(info.memory_total)
        ),
    );
    line("User", &n(&info.user));
    for d in &info.disks {
        line(
            "Disk",
            &format!(
                "{} ({}): {} free of {}",
                n(&d.mount),
                n(&d.fs),
                bytes(d.available),
                bytes(d.total)
            ),
        );
    }
    for i in &info.interfaces {
        let addresses: Vec<String> = i.addresses.iter().map(|a| n(a)).collect();
        line(
            "Interface",
            &format!("{}: {}", n(&i.name), addresses.join(" ")),
        );
    }
    for p in &info.processes {
        line(
            "Process",
            &format!(
                "{:>7} {:>4}% {:>10} {}",
                p.pid,
                p.cpu_percent,
                bytes(p.memory),
                n(&p.name)
            ),
        );
    }
    t
}

/// Bytes in binary units: `512 B`, `1.5 KiB`, `3.2 GiB`.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    // Precision loss is fine for one decimal.
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// A duration in words: `3 days 4 h`, `5 h 12 min`, `7 min`.
fn duration(secs: u64) -> String {
    let (days, hours, minutes) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60);
    match days {
        0 if hours == 0 => format!("{minutes} min"),
        0 => format!("{hours} h {minutes} min"),
        1 => format!("1 day {hours} h"),
        _ => format!("{days} days {hours} h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn describes_this_machine() {
        let info = collect().await;
        assert!(!info.os.is_empty(), "{info:?}");
        assert!(!info.kernel.is_empty(), "{info:?}");
        assert!(!info.hostname.is_empty(), "{info:?}");
        assert!(info.cpus >= 1, "{info:?}");
        assert!(info.memory_total > 0, "{info:?}");
        assert!(info.memory_available <= info.memory_total, "{info:?}");
        assert!(!info.interfaces.is_empty(), "{info:?}");
        assert!(!info.processes.is_empty() && info.processes.len() <= TOP_PROCESSES);
        assert!(info.disks.len() <= MAX_DISKS && info.interfaces.len() <= MAX_INTERFACES);
        assert!(!info.user.is_empty(), "{info:?}");
        let table = table(&info);
        assert!(table.contains(&info.hostname), "{table}");
        assert!(table.lines().count() >= 7 + info.interfaces.len());
    }

    #[tokio::test]
    async fn a_busy_process_shows_its_cpu() {
        // Spin a core on a thread of this process while collecting.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let spinning = stop.clone();
        let spinner = std::thread::spawn(move || {
            while !spinning.load(std::sync::atomic::Ordering::Relaxed) {
                std::hint::spin_loop();
            }
        });
        // sysinfo shows no CPU use for a process that had none at the
        // first sample: let the spinner run up some time first.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let info = collect().await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        spinner.join().unwrap();
        let me = std::process::id();
        let mine = info.processes.iter().find(|p| p.pid == me);
        assert!(
            mine.is_some_and(|p| p.cpu_percent >= 30),
            "{:?}",
            info.processes
        );
    }

    #[test]
    fn clamps_on_a_character_boundary() {
        let long = "é".repeat(MAX_TEXT);
        let c = clamp(&long);
        assert!(c.len() <= MAX_TEXT && c.len() >= MAX_TEXT - 1);
        assert_eq!(clamp("short"), "short");
    }

    #[test]
    fn human_units() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
        assert_eq!(duration(59), "0 min");
        assert_eq!(duration(5 * 3600 + 12 * 60), "5 h 12 min");
        assert_eq!(duration(86_400 + 3600), "1 day 1 h");
        assert_eq!(duration(3 * 86_400 + 4 * 3600 + 59), "3 days 4 h");
    }

    #[test]
    fn table_neutralizes_what_processes_call_themselves() {
        let info = SystemInfo {
            hostname: "box".into(),
            processes: vec![Process {
                pid: 7,
                name: "evil\u{1b}]52;c;AAAA\u{7}".into(),
                cpu_percent: 1,
                memory: 2048,
            }],
            ..SystemInfo::default()
        };
        let t = table(&info);
        assert!(!t.contains('\u{1b}') && !t.contains('\u{7}'), "{t}");
        assert!(t.contains("evil\\e]52"), "{t}");
        assert!(t.contains("2.0 KiB"), "{t}");
    }
}
