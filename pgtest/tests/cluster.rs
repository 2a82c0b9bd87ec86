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
