//! `posbridge config check|example`.

use std::path::Path;

use crate::config::{Config, EXAMPLE, Source, locate};

/// Validates `file` (or the located configuration); prints a verdict.
/// Returns false when invalid.
pub fn check(file: Option<&Path>, flag: Option<&Path>) -> bool {
    // The verdict and the summary follow the locale; the errors themselves
    // name TOML keys and values, which read the same in both languages.
    let ru = crate::api::i18n::locale_is_russian();
    let error = if ru { "ошибка" } else { "error" };
    let source = match file {
        Some(f) => Source::Flag(f.to_path_buf()),
        None => locate(flag),
    };
    match source.load() {
        Ok(c) => {
            // What `run` needs from the file system, so check does not pass
            // a configuration that fails at start.
            if let Err(e) = files(&c) {
                eprintln!("{error}: {e}");
                return false;
            }
            match (source.path(), ru) {
                (Some(p), false) => println!("{}: ok", p.display()),
                (Some(p), true) => println!("{}: в порядке", p.display()),
                (None, false) => {
                    println!("no configuration file found; the built-in defaults are valid")
                }
                (None, true) => {
                    println!("файл конфигурации не найден; встроенные значения по умолчанию верны")
                }
            }
            summary(&c, ru);
            true
        }
        Err(e) => {
            eprintln!("{error}: {e}");
            false
        }
    }
}

/// The token file loads (and is private, else a warning), and the state
/// and database directories exist or can be created. Creates nothing.
/// The console's configuration check runs it too.
pub fn files(c: &Config) -> Result<(), String> {
    if let Some(t) = &c.daemon.token_file {
        crate::auth::Tokens::load(t).map_err(|e| format!("daemon.token_file: {e}"))?;
        if let Some(mode) = crate::auth::readable_by_others(t) {
            eprintln!(
                "warning: daemon.token_file {} is readable by group or others (mode {mode:04o}); chmod 600 it",
                t.display()
            );
        }
    }
    let state = c.state_dir();
    if let Some(why) = crate::store::private::creatable(&state) {
        return Err(format!(
            "daemon.state_dir {}: cannot be created: {why}",
            state.display()
        ));
    }
    let db = c.database_path();
    if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty())
        && let Some(why) = crate::store::private::creatable(dir)
    {
        return Err(format!(
            "ledger.path {}: its directory cannot be created: {why}",
            db.display()
        ));
    }
    Ok(())
}

fn summary(c: &Config, ru: bool) {
    let [socket, state, database, tcp] = if ru {
        ["сокет:   ", "данные:  ", "база:    ", "tcp:     "]
    } else {
        ["socket:  ", "state:   ", "database:", "tcp:     "]
    };
    println!("  {socket} {}", c.socket_path().display());
    println!("  {state} {}", c.state_dir().display());
    println!("  {database} {}", c.database_path().display());
    if let Some(t) = &c.daemon.tcp {
        println!("  {tcp} {}", t.listen.get_ref());
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
