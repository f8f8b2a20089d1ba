//! The real binary as a child process: [`Binary`] says how to run it (path,
//! environment, working directory), [`Process`] is one running, with its
//! stdout and stderr read while it runs (a full pipe would block it), killed
//! when dropped so that a failing test leaves nothing running.

use std::ops::Deref;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::{Mutex as AsyncMutex, MutexGuard};

use crate::app::Admin;
use crate::{TestEnv, eventually, lazy};

/// How long a started server has to answer `/readyz` with 200.
const START_WAIT: Duration = Duration::from_secs(60);

/// Tests that run the binary and measure time take turns: they load the
/// machine, and their timings must not disturb one another.
pub async fn timed_turn() -> MutexGuard<'static, ()> {
    static TURN: AsyncMutex<()> = AsyncMutex::const_new(());
    TURN.lock().await
}

/// A binary to run against a test environment: its path (the caller's
/// `env!("CARGO_BIN_EXE_authrelay")`), the environment's variables only (plus
/// `PATH`, and `AUTHRELAY_LOG=warn` unless set), run in its state directory.
#[derive(Clone)]
pub struct Binary {
    path: PathBuf,
    vars: Vec<(String, String)>,
    dir: PathBuf,
}

impl Binary {
    pub fn new(path: impl Into<PathBuf>, env: &TestEnv) -> Self {
        let mut vars = vec![("AUTHRELAY_LOG".to_owned(), "warn".to_owned())];
        vars.extend(env.vars.iter().map(|(k, v)| (k.clone(), v.clone())));
        Self { path: path.into(), vars, dir: env.state_dir.0.clone() }
    }

    /// Sets a variable (the last one set wins).
    pub fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.set(key, value);
        self
    }

    /// Sets a variable in place.
    pub fn set(&mut self, key: &str, value: impl Into<String>) -> &mut Self {
        self.vars.push((key.to_owned(), value.into()));
        self
    }

    /// Sets several variables.
    pub fn envs(mut self, vars: &[(&str, String)]) -> Self {
        for (k, v) in vars {
            self.set(k, v.clone());
        }
        self
    }

    /// The command, to run by hand (standard input closed).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.path);
        command
            .args(args)
            .current_dir(&self.dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.vars.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        command
    }

    /// Runs a one-shot command to its end.
    pub fn output(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("the binary runs")
    }

    /// Starts a long-running command on a port of its own (`AUTHRELAY_HTTP_ADDR`)
    /// without waiting for it.
    pub fn spawn(&self, args: &[&str]) -> Process {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut command = self.command(args);
        command.env("AUTHRELAY_HTTP_ADDR", format!("127.0.0.1:{port}"));
        let token = self.vars.iter().rev().find(|(k, _)| k == "AUTHRELAY_ADMIN_TOKEN").map(|(_, v)| v.as_str());
        let admin = Admin::new(([127, 0, 0, 1], port).into(), token.unwrap_or_default(), Duration::from_secs(5));
        Process::spawn(command, Some(admin))
    }

    /// Starts a server (`run …`) and waits until its `/readyz` answers 200.
    pub async fn serve(&self, args: &[&str]) -> Process {
        let mut process = self.spawn(args);
        process.wait_ready(START_WAIT).await;
        process
    }
}

/// Output read from a pipe while the process runs.
struct Captured {
    bytes: Arc<Mutex<Vec<u8>>>,
    reader: Mutex<Option<JoinHandle<()>>>,
}

impl Captured {
    fn read(pipe: impl std::io::Read + Send + 'static) -> Self {
        let bytes = Arc::new(Mutex::new(Vec::new()));
        let sink = bytes.clone();
        let reader = std::thread::spawn(move || {
            let mut pipe = pipe;
            let mut chunk = [0u8; 8192];
            while let Ok(n @ 1..) = pipe.read(&mut chunk) {
                sink.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
        });
        Self { bytes, reader: Mutex::new(Some(reader)) }
    }

    /// Everything read so far; all of it once `ended` (the reader is joined).
    fn text(&self, ended: bool) -> String {
        if ended && let Some(reader) = self.reader.lock().unwrap().take() {
            let _ = reader.join();
        }
        String::from_utf8_lossy(&self.bytes.lock().unwrap()).into_owned()
    }
}

/// A running child process; SIGKILLed and reaped when dropped. Derefs to the
/// [`Admin`] client of the server it runs, when it runs one (`run`).
pub struct Process {
    child: Child,
    exited: Option<ExitStatus>,
    stdout: Captured,
    stderr: Captured,
    admin: Option<Admin>,
}

impl Process {
    /// Starts `command` with its output captured; `admin` reaches the admin
    /// API it serves, if any.
    pub fn spawn(mut command: Command, admin: Option<Admin>) -> Self {
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().expect("the binary starts");
        let stdout = Captured::read(child.stdout.take().unwrap());
        let stderr = Captured::read(child.stderr.take().unwrap());
        Self { child, exited: None, stdout, stderr, admin }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until `/readyz` answers 200; panics with the log if the process
    /// ends first or `within` passes.
    pub async fn wait_ready(&mut self, within: Duration) {
        let (stderr, stdout) = (self.stderr.bytes.clone(), self.stdout.bytes.clone());
        let what =
            lazy(move || format!("the process answers /readyz with 200; its log ends:\n{}", tail(&stderr, &stdout)));
        let ready = eventually(within, what, async || {
            if let Some(status) = self.try_exit() {
                return Some(Err(status));
            }
            (self.ready().await == Some(200)).then_some(Ok(()))
        })
        .await;
        if let Err(status) = ready {
            panic!("{} exited during start ({status}): {}", self.child.id(), self.log_tail());
        }
    }

    /// Sends `signal` (`TERM`, `INT`, …).
    pub fn signal(&self, signal: &str) {
        let sent = Command::new("kill").args(["-s", signal, &self.pid().to_string()]).status().unwrap();
        assert!(sent.success(), "kill -s {signal} failed");
    }

    /// SIGTERM, as an operator stops a server.
    pub fn terminate(&self) {
        self.signal("TERM");
    }

    /// SIGKILL, and reap it.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.exited = Some(self.child.wait().unwrap());
    }

    /// The exit status, if it has ended.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().unwrap();
        }
        self.exited
    }

    /// Resolves when the process has ended (checked every 20 ms): bound it with a timeout.
    async fn ended(&mut self) -> ExitStatus {
        loop {
            if let Some(status) = self.try_exit() {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for the process to end; panics with the log after `within`.
    pub async fn exit_within(&mut self, within: Duration) -> ExitStatus {
        match tokio::time::timeout(within, self.ended()).await {
            Ok(status) => status,
            Err(_) => panic!("still running {within:?} later: {}", self.log_tail()),
        }
    }

    /// Panics if the process ends within `window`.
    pub async fn stays_up_for(&mut self, window: Duration) {
        if let Ok(status) = tokio::time::timeout(window, self.ended()).await {
            panic!("the process ended within {window:?} ({status}): {}", self.log_tail());
        }
    }

    /// Stops it as an operator would, from synchronous code: SIGTERM, then
    /// SIGKILL if it is still running after `grace`. Returns its stderr.
    pub fn stop(mut self, grace: Duration) -> String {
        if self.try_exit().is_none() {
            let _ = Command::new("kill").args(["-TERM", &self.pid().to_string()]).status();
            let deadline = std::time::Instant::now() + grace;
            while self.try_exit().is_none() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        if self.try_exit().is_none() {
            self.kill();
        }
        self.stderr()
    }

    /// Resident memory, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS in /proc/<pid>/status");
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// Its standard output so far (all of it once it has ended).
    pub fn stdout(&self) -> String {
        self.stdout.text(self.exited.is_some())
    }

    /// Its standard error, where it logs, so far (all of it once it has ended).
    pub fn stderr(&self) -> String {
        self.stderr.text(self.exited.is_some())
    }

    /// The last 20 lines of its log (stderr, then stdout), for failure messages.
    pub fn log_tail(&self) -> String {
        tail(&self.stderr.bytes, &self.stdout.bytes)
    }
}

/// The last 20 lines of what was captured, stderr then stdout.
fn tail(stderr: &Mutex<Vec<u8>>, stdout: &Mutex<Vec<u8>>) -> String {
    let text = |bytes: &Mutex<Vec<u8>>| String::from_utf8_lossy(&bytes.lock().unwrap()).into_owned();
    let log = format!("{}{}", text(stderr), text(stdout));
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

impl Deref for Process {
    type Target = Admin;

    fn deref(&self) -> &Admin {
        self.admin.as_ref().expect("the process serves the admin API")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
