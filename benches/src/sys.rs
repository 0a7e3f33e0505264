//! What the machine is, and what a process costs (from `/proc`).

use anyhow::{Context, Result, anyhow};
use std::process::Command;

/// `nproc` and the CPU model, for the top of every report.
pub fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    format!("machine: nproc {cpus}, {model}, Linux {kernel}")
}

/// Prints the report header: a title and the machine.
pub fn print_header(title: &str) {
    println!("## {title}\n");
    println!("{}\n", machine());
}

/// Clock ticks per second of `/proc/*/stat` times (asked once).
pub fn clk_tck() -> u64 {
    static TCK: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TCK.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|t| *t > 0)
            .unwrap_or(100)
    })
}

/// CPU time split into user and system seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Cpu {
    /// utime.
    pub user: f64,
    /// stime.
    pub sys: f64,
}

impl Cpu {
    /// user + system.
    pub fn total(self) -> f64 {
        self.user + self.sys
    }
}

impl std::ops::Sub for Cpu {
    type Output = Cpu;
    fn sub(self, o: Cpu) -> Cpu {
        Cpu {
            user: self.user - o.user,
            sys: self.sys - o.sys,
        }
    }
}

/// utime and stime (fields 14 and 15) of a `/proc/.../stat` file.
fn stat_cpu(path: &str) -> Result<Cpu> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    // The command name (field 2) may contain spaces; fields after it are
    // plain. After ')' comes field 3, so utime is the 12th.
    let rest = text
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow!("{path}: unexpected format"))?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| -> Result<u64> {
        f.get(i)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| anyhow!("{path}: no field {}", i + 3))
    };
    let hz = clk_tck() as f64;
    Ok(Cpu {
        user: tick(11)? as f64 / hz,
        sys: tick(12)? as f64 / hz,
    })
}

/// CPU time (all threads) a process has used so far.
pub fn process_cpu(pid: u32) -> Result<Cpu> {
    stat_cpu(&format!("/proc/{pid}/stat"))
}

/// CPU time used so far by every process whose command name is `comm`
/// (e.g. the PostgreSQL server's `postgres` processes), by pid. A process
/// that ends between the listing and the reading is left out.
pub fn command_cpu(comm: &str) -> Result<std::collections::HashMap<u32, Cpu>> {
    let mut out = std::collections::HashMap::new();
    for entry in std::fs::read_dir("/proc").context("listing /proc")? {
        let Some(pid) = entry?
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let is = std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .is_ok_and(|c| c.trim_end() == comm);
        if let (true, Ok(cpu)) = (is, process_cpu(pid)) {
            out.insert(pid, cpu);
        }
    }
    Ok(out)
}

/// CPU used between two [`command_cpu`] readings: a process that started
/// in between counts whole; what one that ended in between used is lost
/// (PostgreSQL keeps a backend per pooled connection, so little is).
pub fn cpu_between(
    before: &std::collections::HashMap<u32, Cpu>,
    after: &std::collections::HashMap<u32, Cpu>,
) -> Cpu {
    after.iter().fold(Cpu::default(), |sum, (pid, a)| {
        let d = *a - before.get(pid).copied().unwrap_or_default();
        Cpu {
            user: sum.user + d.user,
            sys: sum.sys + d.sys,
        }
    })
}

/// CPU time the calling thread has used so far.
pub fn thread_cpu() -> Result<Cpu> {
    stat_cpu("/proc/thread-self/stat")
}

/// A `Vm*` line of `/proc/PID/status` (e.g. `VmRSS`, `VmHWM`), in KiB.
pub fn vm_kib(pid: u32, field: &str) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| anyhow!("{path}: no {field}"))
}

/// Raises this process's open-file limit as far as the hard limit allows
/// and checks that `need` descriptors fit.
pub fn raise_nofile(need: u64) -> Result<u64> {
    let mut got = rlimit::increase_nofile_limit(u64::MAX).context("raising RLIMIT_NOFILE")?;
    // With CAP_SYS_RESOURCE the hard limit can be lifted here (up to
    // fs.nr_open); the gateway and the proxy started from here inherit it.
    if got < need && rlimit::setrlimit(rlimit::Resource::NOFILE, need, need).is_ok() {
        got = need;
    }
    if got < need {
        return Err(anyhow!(
            "this benchmark needs about {need} open files but the hard limit is {got}; \
             raise it (ulimit -Hn, prlimit) or ask for fewer connections"
        ));
    }
    Ok(got)
}
