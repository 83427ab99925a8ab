//! The machine a benchmark ran on (printed with the table): CPUs, model, kernel, memory, load.

use std::fs;

#[derive(Debug, Clone)]
pub struct Machine {
    pub cpus: usize,
    pub model: String,
    pub kernel: String,
    pub mem_total_mb: Option<u64>,
}

impl Machine {
    pub fn detect() -> Machine {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let model = cpuinfo
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim() == "model name").then(|| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let ostype = fs::read_to_string("/proc/sys/kernel/ostype").unwrap_or_default();
        let release = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let kernel = format!("{} {}", ostype.trim(), release.trim())
            .trim()
            .to_string();
        let mem_total_mb = fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find(|l| l.starts_with("MemTotal:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|kb| kb.parse::<u64>().ok())
            })
            .map(|kb| kb / 1024);
        Machine {
            cpus,
            model,
            kernel: if kernel.is_empty() {
                "unknown".into()
            } else {
                kernel
            },
            mem_total_mb,
        }
    }

    pub fn describe(&self) -> String {
        let mem = self
            .mem_total_mb
            .map(|m| format!(", {:.1} GB RAM", m as f64 / 1024.0))
            .unwrap_or_default();
        format!(
            "{} CPU(s) (nproc), {}, {}{}",
            self.cpus, self.model, self.kernel, mem
        )
    }
}

/// The 1/5/15-minute load averages (the machine is shared; a busy neighbour shows here).
pub fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into())
}

/// The source tree the binaries were built from: `git rev-parse --short HEAD`, marked when the
/// working tree has uncommitted changes (best effort: `None` outside a git checkout).
pub fn source_revision() -> Option<String> {
    let git = |args: &[&str]| -> Option<String> {
        let out = std::process::Command::new("git").args(args).output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let head = git(&["rev-parse", "--short", "HEAD"])?;
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    Some(if dirty {
        format!("{head} with uncommitted changes")
    } else {
        head
    })
}
