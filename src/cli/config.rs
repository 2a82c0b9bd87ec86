//! `posbridge config check|example`.

use std::path::Path;

use crate::config::{Config, EXAMPLE, Source, locate};

/// Validates `file` (or the located configuration); prints a verdict.
/// Returns false when invalid.
pub fn check(file: Option<&Path>, flag: Option<&Path>) -> bool {
    let source = match file {
        Some(f) => Source::Flag(f.to_path_buf()),
        None => locate(flag),
    };
    match source.load() {
        Ok(c) => {
            match source.path() {
                Some(p) => println!("{}: ok", p.display()),
                None => println!("no configuration file found; the built-in defaults are valid"),
            }
            summary(&c);
            true
        }
        Err(e) => {
            eprintln!("error: {e}");
            false
        }
    }
}

fn summary(c: &Config) {
    println!("  socket:   {}", c.socket_path().display());
    println!("  state:    {}", c.state_dir().display());
    println!("  database: {}", c.database_path().display());
    if let Some(t) = &c.daemon.tcp {
        println!("  tcp:      {}", t.listen.get_ref());
    }
    for d in crate::devices::DeviceEntry::from_config(c) {
        println!(
            "  {} {:<16} {:<8} {}",
            d.class(),
            d.name(),
            d.type_name(),
            d.describe()
        );
    }
}

/// Prints the commented sample.
pub fn example() {
    print!("{EXAMPLE}");
}
