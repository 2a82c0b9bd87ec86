//! The throwaway cluster: starts, serves, and leaves nothing behind.

use std::path::Path;

use posbridge_pgtest::{Cluster, DEFAULT_DB};

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
            .unwrap_or(true)
}

#[test]
fn start_connect_createdb_and_stop_leaves_no_process() {
    let cluster = Cluster::start().expect("a throwaway PostgreSQL");
    let postmaster = cluster.pid();
    let dir = cluster.data_dir().parent().unwrap().to_path_buf();

    // The default database over TCP.
    let mut c = cluster.connect(DEFAULT_DB).unwrap();
    let one: i32 = c.query_one("SELECT 1", &[]).unwrap().get(0);
    assert_eq!(one, 1);
    let fsync: String = c.query_one("SHOW fsync", &[]).unwrap().get(0);
    assert_eq!(fsync, "on", "durability tests rely on fsync");
    let max: String = c.query_one("SHOW max_connections", &[]).unwrap().get(0);
    assert_eq!(max, "200");
    let backend: i32 = c.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);

    // A per-test database, over TCP and over the socket.
    let url = cluster.createdb("other_db").unwrap();
    assert!(
        url.ends_with(&format!(":{}/other_db", cluster.port())),
        "{url}"
    );
    let mut o = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    o.batch_execute("CREATE TABLE t (x INT); INSERT INTO t VALUES (7)")
        .unwrap();
    let mut s =
        postgres::Client::connect(&cluster.socket_conninfo("other_db"), postgres::NoTls).unwrap();
    let x: i32 = s.query_one("SELECT x FROM t", &[]).unwrap().get(0);
    assert_eq!(x, 7);
    assert!(cluster.createdb("bad name; DROP").is_err());

    assert!(alive(postmaster));
    assert!(alive(backend as u32));
    drop(cluster);
    assert!(!alive(postmaster), "the postmaster outlived the cluster");
    // Backends exit with the postmaster's fast shutdown.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while alive(backend as u32) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(!alive(backend as u32), "a backend outlived the cluster");
    assert!(!dir.exists(), "the cluster's directory was left behind");
    drop((c, o, s));
}

#[test]
fn shared_cluster_is_one_while_held() {
    let a = Cluster::shared().unwrap();
    let b = Cluster::shared().unwrap();
    assert_eq!(a.port(), b.port());
    let pid = a.pid();
    drop((a, b));
    assert!(!alive(pid));
}

/// A test binary killed outright (a timeout's SIGKILL) runs no destructor:
/// the watchdog still stops its server and removes its directory.
#[test]
fn a_killed_test_process_leaves_no_server() {
    if let Ok(out) = std::env::var("PGTEST_CHILD_OUT") {
        // The child: start a cluster, say where it is, wait to be killed.
        let cluster = Cluster::start().unwrap();
        let dir = cluster.data_dir().parent().unwrap().display().to_string();
        std::fs::write(out, format!("{} {dir}", cluster.pid())).unwrap();
        std::thread::sleep(std::time::Duration::from_secs(120));
        unreachable!("the parent kills this process");
    }
    let out = tempfile::NamedTempFile::new().unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_killed_test_process_leaves_no_server",
            "--nocapture",
        ])
        .env("PGTEST_CHILD_OUT", out.path())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    let said = loop {
        let s = std::fs::read_to_string(out.path()).unwrap();
        if !s.is_empty() {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the child never started a cluster"
        );
        assert!(child.try_wait().unwrap().is_none(), "the child died early");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let (pid, dir) = said.split_once(' ').unwrap();
    let pid: u32 = pid.parse().unwrap();
    assert!(alive(pid));
    child.kill().unwrap();
    child.wait().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while (alive(pid) || Path::new(dir).exists()) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(!alive(pid), "the server outlived its killed test process");
    assert!(!Path::new(dir).exists(), "{dir} was left behind");
}
