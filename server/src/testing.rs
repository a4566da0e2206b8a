//! Runs the `ringlog-server` binary as a child process on a free loopback
//! port: the harness of the integration tests (here and in the client) and
//! of benchmarks that want a real broker process.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

/// A broker process with its own data directory; killed when dropped.
pub struct BrokerProcess {
    /// The child process.
    pub child: Child,
    /// Where clients connect.
    pub addr: SocketAddr,
    /// The metrics endpoint, unless disabled.
    pub metrics: Option<SocketAddr>,
    /// Where Kafka clients connect, unless disabled.
    pub kafka: Option<SocketAddr>,
    /// The schema registry's address, when it is on.
    pub registry: Option<SocketAddr>,
    /// Its data directory.
    pub data_dir: PathBuf,
    binary: PathBuf,
    args: Vec<String>,
    open_files_limit: Option<u64>,
}

/// A tool a test drives, or why it cannot run: under `CI` (whose `.ci/run`
/// installs every tool) a missing one fails the test, elsewhere it skips it
/// with a word on stderr.
pub fn required<T>(what: &str, found: Option<T>) -> Option<T> {
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{what} is missing: .ci/run installs it"
        );
        eprintln!("skipped: {what} is not installed");
    }
    found
}

/// The Python of `RINGLOG_KAFKA_PYTHON` (the virtual environment `.ci/run`
/// makes; `python3` without it) if it can `import` every module in
/// `modules`, per [`required`].
pub fn python_with(modules: &str) -> Option<PathBuf> {
    let candidate = std::env::var_os("RINGLOG_KAFKA_PYTHON")
        .map_or_else(|| PathBuf::from("python3"), PathBuf::from);
    let found = std::process::Command::new(&candidate)
        .args(["-c", &format!("import {modules}")])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
        .then_some(candidate);
    required(&format!("a Python with {modules}"), found)
}

/// The `ringlog-server` binary of this build: next to the running test or
/// bench executable (`target/<profile>/`), or in the workspace's
/// `target/debug` (doc tests run from elsewhere); built first if missing.
/// `RINGLOG_SERVER_BIN` overrides.
pub fn server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("RINGLOG_SERVER_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    // target/<profile>/deps/<test>: the binary is in target/<profile>.
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .unwrap_or(Path::new("."));
    let release = profile_dir.file_name().is_some_and(|n| n == "release");
    let mut candidates = vec![profile_dir.join("ringlog-server")];
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        candidates.push(PathBuf::from(target).join("debug/ringlog-server"));
    }
    if let Some(manifest) = std::env::var_os("CARGO_MANIFEST_DIR") {
        let manifest = PathBuf::from(manifest);
        candidates.push(manifest.join("../target/debug/ringlog-server"));
        candidates.push(manifest.join("target/debug/ringlog-server"));
    }
    if let Some(found) = candidates.iter().find(|c| c.exists()) {
        return found.clone();
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build.args(["build", "-p", "ringlog-server", "--bin", "ringlog-server"]);
    if release {
        build.arg("--release");
    }
    let _ = build.status();
    candidates
        .iter()
        .find(|c| c.exists())
        .unwrap_or(&candidates[0])
        .clone()
}

/// A port in 20000..32000 that is free now, varied by process and attempt.
fn quiet_port(attempt: u32) -> u16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mix =
        u64::from(std::process::id()) * 7919 + u64::from(nanos) + u64::from(attempt) * 104_729;
    for i in 0..12_000u64 {
        let port = 20_000 + ((mix + i * 13) % 12_000) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    0
}

impl BrokerProcess {
    /// Starts `binary` on `127.0.0.1:0` with `shards` shards, metrics on a
    /// free port, and `extra` flags; returns once it serves.
    ///
    /// The port is picked below the kernel's ephemeral range, so that a
    /// restart can take it again without another test's broker having been
    /// handed it meanwhile.
    pub fn start(
        binary: &Path,
        data_dir: &Path,
        shards: usize,
        extra: &[&str],
    ) -> std::io::Result<BrokerProcess> {
        Self::start_limited(binary, data_dir, shards, extra, None)
    }

    /// Like [`BrokerProcess::start`], with the soft and hard open-files
    /// limits of the broker (and of its restarts) lowered to `limit`, as
    /// `ulimit -n` does.
    pub fn start_with_open_files_limit(
        binary: &Path,
        data_dir: &Path,
        shards: usize,
        extra: &[&str],
        limit: u64,
    ) -> std::io::Result<BrokerProcess> {
        Self::start_limited(binary, data_dir, shards, extra, Some(limit))
    }

    fn start_limited(
        binary: &Path,
        data_dir: &Path,
        shards: usize,
        extra: &[&str],
        open_files_limit: Option<u64>,
    ) -> std::io::Result<BrokerProcess> {
        let mut last = None;
        for attempt in 0..20 {
            let listen = format!("127.0.0.1:{}", quiet_port(attempt));
            let args = Self::args(data_dir, shards, &listen, extra);
            match Self::spawn(
                binary.to_path_buf(),
                data_dir.to_path_buf(),
                args,
                open_files_limit,
            ) {
                Ok(broker) => return Ok(broker),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("no free port")))
    }

    /// Starts `binary` listening on `listen` (`127.0.0.1:0` for any port).
    pub fn start_on(
        binary: &Path,
        data_dir: &Path,
        shards: usize,
        listen: &str,
        extra: &[&str],
    ) -> std::io::Result<BrokerProcess> {
        let args = Self::args(data_dir, shards, listen, extra);
        Self::spawn(binary.to_path_buf(), data_dir.to_path_buf(), args, None)
    }

    fn args(data_dir: &Path, shards: usize, listen: &str, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = vec![
            "--data-dir".into(),
            data_dir.display().to_string(),
            "--listen".into(),
            listen.into(),
            "--metrics-listen".into(),
            "127.0.0.1:0".into(),
            "--shards".into(),
            shards.to_string(),
        ];
        // Any free port: a fixed default would collide between tests.
        if !extra.contains(&"--kafka-listen") {
            args.extend(["--kafka-listen".into(), "127.0.0.1:0".into()]);
        }
        let clustered = extra.contains(&"--peers");
        if !extra.contains(&"--schema-registry-listen") && !clustered {
            args.extend(["--schema-registry-listen".into(), "127.0.0.1:0".into()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }

    fn spawn(
        binary: PathBuf,
        data_dir: PathBuf,
        args: Vec<String>,
        open_files_limit: Option<u64>,
    ) -> std::io::Result<BrokerProcess> {
        let mut command = match open_files_limit {
            // The shell lowers the limit and becomes the broker (same pid).
            Some(limit) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!("ulimit -n {limit} && exec \"$0\" \"$@\""))
                    .arg(&binary);
                c
            }
            None => Command::new(&binary),
        };
        let mut child = command
            .args(&args)
            .env(
                "RINGLOG_LOG",
                std::env::var("RINGLOG_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("no stdout"))?;
        let mut lines = BufReader::new(stdout).lines();
        let (mut addr, mut metrics, mut kafka, mut registry) = (None, None, None, None);
        for line in lines.by_ref() {
            let line = line?;
            if let Some(a) = line.strip_prefix("ringlog-server listening on ") {
                addr = a.parse().ok();
            } else if let Some(m) = line.strip_prefix("ringlog-server metrics on http://") {
                metrics = m.trim_end_matches("/metrics").parse().ok();
            } else if let Some(k) = line.strip_prefix("ringlog-server kafka listening on ") {
                kafka = k.parse().ok();
            } else if let Some(r) = line.strip_prefix("ringlog-server schema registry on http://") {
                registry = r.parse().ok();
            } else if line.starts_with("ringlog-server data in") {
                break;
            }
        }
        // Keep draining stdout so the broker never blocks on it.
        std::thread::spawn(move || lines.for_each(drop));
        let Some(addr) = addr else {
            let _ = child.kill();
            let status = child.wait()?;
            return Err(std::io::Error::other(format!(
                "ringlog-server did not start: {status}"
            )));
        };
        Ok(BrokerProcess {
            child,
            addr,
            metrics,
            kafka,
            registry,
            data_dir,
            binary,
            args,
            open_files_limit,
        })
    }

    /// SIGKILL: no chance to sync or close anything.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends `signal` (SIGSTOP, SIGCONT, ...) to the process.
    pub fn signal(&self, signal: libc::c_int) -> std::io::Result<()> {
        let pid = libc::pid_t::try_from(self.child.id()).map_err(std::io::Error::other)?;
        // SAFETY: kill(2) on our own child, not yet reaped (`self` owns the
        // `Child` and has not waited on it), so the pid is its.
        if unsafe { libc::kill(pid, signal) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// SIGTERM, then the exit status.
    pub fn terminate(mut self) -> std::io::Result<ExitStatus> {
        let pid = libc::pid_t::try_from(self.child.id()).map_err(std::io::Error::other)?;
        // SAFETY: kill(2) on our own child, not yet reaped, so the pid is its.
        if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        self.child.wait()
    }

    /// What a restart runs: the same flags, but on the port already in use,
    /// so clients reconnect to the address they know.
    fn restart_args(&self) -> (PathBuf, PathBuf, Vec<String>) {
        let mut args = self.args.clone();
        if let Some(i) = args.iter().position(|a| a == "--listen") {
            args[i + 1] = self.addr.to_string();
        }
        if let (Some(i), Some(kafka)) =
            (args.iter().position(|a| a == "--kafka-listen"), self.kafka)
        {
            args[i + 1] = kafka.to_string();
        }
        (self.binary.clone(), self.data_dir.clone(), args)
    }

    /// Kills the broker and starts it again on the same data and port.
    pub fn restart_after_kill(self) -> std::io::Result<BrokerProcess> {
        let (binary, data_dir, args) = self.restart_args();
        let limit = self.open_files_limit;
        self.kill();
        Self::spawn(binary, data_dir, args, limit)
    }

    /// Stops the broker with SIGTERM and starts it again on the same data and port.
    pub fn restart_gracefully(self) -> std::io::Result<BrokerProcess> {
        let (binary, data_dir, args) = self.restart_args();
        let limit = self.open_files_limit;
        let status = self.terminate()?;
        if !status.success() {
            return Err(std::io::Error::other(format!(
                "ringlog-server exited with {status}"
            )));
        }
        Self::spawn(binary, data_dir, args, limit)
    }

    /// The broker's `/metrics` text.
    pub fn metrics_text(&self) -> std::io::Result<String> {
        let addr = self
            .metrics
            .ok_or_else(|| std::io::Error::other("metrics are off"))?;
        let mut s = TcpStream::connect(addr)?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: ringlog\r\n\r\n")?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
