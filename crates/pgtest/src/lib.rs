//! A throwaway PostgreSQL server for tests: [`database`] gives the URL of a
//! new, empty database on a server of this test process's own, started on
//! first use (`initdb` into a temporary directory, `postgres` on a free
//! loopback port, TLS on with a self-signed certificate, plain connections
//! taken too) and stopped when the process exits, by a watchdog that waits
//! for it to end. Nothing of the machine's own PostgreSQL is used or
//! touched: only its programs.
//!
//! The programs are looked for in `ROOMKIT_GRAPH_PG_BIN`, then in the newest
//! `/usr/lib/postgresql/*/bin` (Debian's `postgresql` package), then on the
//! `PATH`. Run as root, the server runs as the `postgres` user (PostgreSQL
//! refuses root), which that package creates.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The server of this process.
struct Server {
    bin: PathBuf,
    port: u16,
    /// Who the programs run as (`runuser -u USER`), when not ourselves.
    user: Option<String>,
}

static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();
static DATABASES: AtomicUsize = AtomicUsize::new(0);

/// The URL of a new, empty database on this process's server, which is
/// started on the first call.
///
/// # Panics
///
/// When the server cannot be started (no PostgreSQL programs, say), with
/// what went wrong: the tests that need it cannot run without it.
pub fn database() -> String {
    let server = match SERVER.get_or_init(Server::start) {
        Ok(server) => server,
        Err(why) => panic!("cannot start a PostgreSQL server for the tests: {why}"),
    };
    let name = format!("test_{}_{}", std::process::id(), DATABASES.fetch_add(1, Ordering::SeqCst));
    if let Err(why) = server.psql(&format!("CREATE DATABASE {name}")) {
        panic!("cannot create database {name}: {why}");
    }
    server.url(&name)
}

/// The URL of a database on this process's server that nobody created: for
/// the errors of a wrong database name.
///
/// # Panics
///
/// As [`database`].
pub fn missing_database() -> String {
    match SERVER.get_or_init(Server::start) {
        Ok(server) => server.url("no_such_database"),
        Err(why) => panic!("cannot start a PostgreSQL server for the tests: {why}"),
    }
}

impl Server {
    fn start() -> Result<Server, String> {
        let bin = find_bin()?;
        let user = is_root().then(|| "postgres".to_owned());
        let dir = tempfile::Builder::new()
            .prefix("roomkit-graph-pg-")
            .tempdir()
            .map_err(|err| format!("cannot make a temporary directory: {err}"))?
            .keep();
        let data = dir.join("data");
        if let Some(user) = &user {
            run("chown", Command::new("chown").arg(user).arg(&dir))?;
        }
        let (cert, key) = (dir.join("server.crt"), dir.join("server.key"));
        write_certificate(&cert, &key)?;
        if let Some(user) = &user {
            run("chown", Command::new("chown").arg(user).arg(&cert).arg(&key))?;
        }
        let port = free_port()?;
        let server = Server { bin, port, user };
        server.run_as("initdb", |command| {
            command
                .args(["--auth=trust", "--username=postgres", "--no-sync", "--encoding=UTF8", "-D"])
                .arg(&data)
        })?;
        // The watchdog stops the server and removes its files once this
        // process is gone, however it ends.
        server.watch(std::process::id(), &dir, &data)?;
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200 \
             -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
            dir.display(),
            cert.display(),
            key.display()
        );
        server.run_as("pg_ctl", |command| {
            command
                .arg("-D")
                .arg(&data)
                .args(["-w", "-t", "60", "-l"])
                .arg(dir.join("log"))
                .args(["-o", &options, "start"])
        })?;
        server.wait_until_ready()?;
        Ok(server)
    }

    fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Runs one SQL statement on the `postgres` database.
    fn psql(&self, sql: &str) -> Result<(), String> {
        let port = self.port.to_string();
        self.run_as("psql", |command| {
            command.args([
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ])
        })
    }

    fn wait_until_ready(&self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match self.psql("SELECT 1") {
                Ok(()) => return Ok(()),
                Err(why) if Instant::now() > deadline => {
                    return Err(format!("the server never answered: {why}"));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Starts the watchdog of `pid`.
    fn watch(&self, pid: u32, dir: &Path, data: &Path) -> Result<(), String> {
        let pg_ctl = self.bin.join("pg_ctl");
        let stop = match &self.user {
            Some(user) => {
                format!("runuser -u {user} -- {} -D {} stop -m immediate", pg_ctl.display(), data.display())
            }
            None => format!("{} -D {} stop -m immediate", pg_ctl.display(), data.display()),
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 0.2; done; {stop} >/dev/null 2>&1; rm -rf {}",
            dir.display()
        );
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map(drop)
            .map_err(|err| format!("cannot start the watchdog: {err}"))
    }

    /// Runs the PostgreSQL program `program` as the server's user.
    fn run_as(&self, program: &str, args: impl FnOnce(&mut Command) -> &mut Command) -> Result<(), String> {
        let path = self.bin.join(program);
        let mut command = match &self.user {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--"]).arg(&path);
                command
            }
            None => Command::new(&path),
        };
        args(&mut command);
        run(program, &mut command)
    }
}

/// Writes a self-signed certificate for 127.0.0.1 and its key (readable by
/// its owner only, as PostgreSQL wants).
fn write_certificate(cert: &Path, key: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt as _;
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()])
        .map_err(|err| format!("cannot make a certificate: {err}"))?;
    std::fs::write(cert, certified.cert.pem())
        .map_err(|err| format!("cannot write the certificate: {err}"))?;
    std::fs::write(key, certified.signing_key.serialize_pem())
        .map_err(|err| format!("cannot write the key: {err}"))?;
    std::fs::set_permissions(key, std::fs::Permissions::from_mode(0o600))
        .map_err(|err| format!("cannot protect the key: {err}"))
}

/// Runs `command`, its output kept for the error.
fn run(what: &str, command: &mut Command) -> Result<(), String> {
    let output = command.stdin(Stdio::null()).output().map_err(|err| format!("cannot run {what}: {err}"))?;
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "{what} failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    ))
}

/// The folder of the PostgreSQL programs.
fn find_bin() -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os("ROOMKIT_GRAPH_PG_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).find(|dir| dir.join("initdb").exists()))
        .ok_or_else(|| {
            "no PostgreSQL programs (initdb, pg_ctl, psql): install Debian's postgresql package, \
             or set ROOMKIT_GRAPH_PG_BIN to their folder"
                .to_owned()
        })
}

/// Whether this process runs as root.
fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|output| output.stdout.trim_ascii() == b"0")
}

/// A loopback port nobody listens on right now.
fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|err| format!("no free port: {err}"))?;
    listener.local_addr().map(|addr| addr.port()).map_err(|err| format!("no free port: {err}"))
}
