//! `posbridge ledger export`: every transaction with its entries, for the
//! accountant's spreadsheet or a script.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::config::locate;
use crate::ledger::db::{Books, Db};
use crate::ledger::embedded::{self, ExportRow};
use crate::store::Store;

/// Output format of `posbridge ledger export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// RFC 4180 CSV with a header row.
    Csv,
    /// One JSON object per line.
    Json,
}

/// CSV header, in the order of [`csv_record`]'s fields.
/// New columns go at the end, so scripts reading by position keep working.
const CSV_HEADER: [&str; 12] = [
    "txn_id",
    "kind",
    "created_at",
    "account",
    "receipt_id",
    "entry_kind",
    "amount",
    "lot_id",
    "reason",
    "operator",
    "cashier",
    "clawback_shortfall",
];

/// Writes every ledger transaction with its entries (one row per entry; a
/// transaction without entries gets one row with the entry fields empty)
/// to `out`, or to stdout when `out` is `None`.
pub async fn export(
    config_flag: Option<&Path>,
    format: ExportFormat,
    out: Option<PathBuf>,
) -> anyhow::Result<()> {
    let books = Books::sqlite(open_existing(config_flag)?);
    let dest = out.clone();
    // One read transaction: the export is one state of the books.
    let written = books
        .read(move |db| {
            // Open the file inside the worker: the rows stream to it page
            // by page without collecting the whole ledger.
            let sink: Box<dyn Write> = match &dest {
                Some(p) => match std::fs::File::create(p) {
                    Ok(f) => Box::new(f),
                    Err(e) => return Ok(Err(e)),
                },
                None => Box::new(std::io::stdout().lock()),
            };
            Ok(write_rows(db, format, sink))
        })
        .await?;
    match &out {
        Some(p) => written.with_context(|| format!("writing {}", p.display())),
        None => written.context("writing to stdout"),
    }
}

/// The till's database for a tool that only reads it (`ledger verify`,
/// `ledger export`): the file the configuration names must exist, since a
/// missing one means the wrong (or no) configuration, not an empty ledger
/// whose invariants all hold; it is opened read-only, never created or
/// migrated.
pub fn open_existing(config_flag: Option<&Path>) -> anyhow::Result<Store> {
    let source = locate(config_flag);
    let config = source.load()?;
    let path = config.database_path();
    let from = match source.path() {
        Some(p) => format!("the path {} gives", p.display()),
        None => "the path of the built-in defaults (no configuration file found)".into(),
    };
    match std::fs::metadata(&path) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => anyhow::bail!(
            "no ledger database at {} ({from}); point at the till's configuration \
             with --config PATH or $POSBRIDGE_CONFIG (an installed till's is {}), \
             or set ledger.path in it",
            path.display(),
            crate::config::SYSTEM_CONFIG,
        ),
        Err(e) => {
            return Err(e).with_context(|| {
                format!(
                    "cannot reach the ledger database {} ({from}); run this as root \
                     or as the daemon's user (sudo -u posbridge ...)",
                    path.display()
                )
            });
        }
    }
    Ok(Store::open_read_only(&path)?)
}

/// Writes every transaction with its entries to `sink` in `format` (the
/// central service's `export` shares it).
pub fn write_rows(db: &dyn Db, format: ExportFormat, sink: Box<dyn Write>) -> std::io::Result<()> {
    let mut w = std::io::BufWriter::new(sink);
    if format == ExportFormat::Csv {
        write_csv_record(&mut w, &CSV_HEADER)?;
    }
    let r = embedded::export(db, |row| match format {
        ExportFormat::Csv => write_csv_record(&mut w, &csv_record(row)),
        ExportFormat::Json => {
            serde_json::to_writer(&mut w, row)?;
            w.write_all(b"\n")
        }
    })
    .map_err(std::io::Error::other)?;
    r?;
    // An explicit flush: BufWriter's drop swallows the error of the last
    // write, and a full disk must not pass for a complete export.
    w.flush()
}

fn csv_record(r: &ExportRow) -> [String; 12] {
    [
        r.txn.to_string(),
        r.kind.clone(),
        r.created_at.clone(),
        r.account.to_string(),
        r.receipt_id.clone().unwrap_or_default(),
        r.entry_kind.clone().unwrap_or_default(),
        r.amount.map(|a| a.to_string()).unwrap_or_default(),
        r.lot.map(|l| l.to_string()).unwrap_or_default(),
        r.reason.clone().unwrap_or_default(),
        r.operator.clone().unwrap_or_default(),
        r.cashier.clone().unwrap_or_default(),
        r.clawback_shortfall
            .map(|a| a.to_string())
            .unwrap_or_default(),
    ]
}

/// One RFC 4180 record: fields joined by commas, CRLF-terminated.
fn write_csv_record<S: AsRef<str>>(w: &mut impl Write, fields: &[S]) -> std::io::Result<()> {
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            w.write_all(b",")?;
        }
        write_csv_field(w, f.as_ref())?;
    }
    w.write_all(b"\r\n")
}

/// A field, quoted (inner quotes doubled) when it holds a comma, quote,
/// CR or LF. The value is never altered otherwise: the export is data for
/// scripts as much as for spreadsheets.
fn write_csv_field(w: &mut impl Write, f: &str) -> std::io::Result<()> {
    if f.contains([',', '"', '\r', '\n']) {
        w.write_all(b"\"")?;
        w.write_all(f.replace('"', "\"\"").as_bytes())?;
        w.write_all(b"\"")
    } else {
        w.write_all(f.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(fields: &[&str]) -> String {
        let mut v = Vec::new();
        write_csv_record(&mut v, fields).unwrap();
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn csv_quotes_only_what_needs_it() {
        assert_eq!(record(&["1", "sale", ""]), "1,sale,\r\n");
        assert_eq!(
            record(&["a,b", "say \"hi\""]),
            "\"a,b\",\"say \"\"hi\"\"\"\r\n"
        );
        assert_eq!(record(&["two\nlines"]), "\"two\nlines\"\r\n");
        assert_eq!(record(&["-12.5", "Чек №1"]), "-12.5,Чек №1\r\n");
    }

    #[test]
    fn every_transaction_and_entry_is_exported() {
        use crate::ledger::embedded::{SaleRef, commit_tx, refund_tx};
        use crate::ledger::origin::Origin;
        use crate::ledger::rules::{Programme, SaleLine};
        use rust_decimal::Decimal;

        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let till = Origin::new("", store.terminal_id());
        let books = Books::sqlite(store);
        let p = Programme::default();
        let now = time::macros::datetime!(2026-03-01 12:00:00 UTC);
        let lines = [SaleLine {
            sku: "A".into(),
            name: "x".into(),
            category: "general".into(),
            qty: Decimal::ONE,
            price: Decimal::from(1000),
            discount: Decimal::ZERO,
        }];
        let receipt = "R \"1\", till 2";
        let sale = books
            .write_blocking(|db| {
                commit_tx(
                    db,
                    &p,
                    "k",
                    "1234",
                    receipt,
                    &lines,
                    Decimal::ZERO,
                    now,
                    &till,
                    None,
                )
            })
            .unwrap()
            .unwrap();
        // Half back: 25 clawed back; a 0-accrual sale has no entries.
        books
            .write_blocking(|db| {
                refund_tx(
                    db,
                    &p,
                    "r",
                    &SaleRef::Transaction(sale.transaction),
                    Some(Decimal::from(500)),
                    None,
                    now,
                    &till,
                    Some("Олег"),
                )
            })
            .unwrap()
            .unwrap();
        let small = [SaleLine {
            price: Decimal::ONE,
            ..lines[0].clone()
        }];
        books
            .write_blocking(|db| {
                commit_tx(
                    db,
                    &p,
                    "z",
                    "1234",
                    "Z",
                    &small,
                    Decimal::ZERO,
                    now,
                    &till,
                    None,
                )
            })
            .unwrap()
            .unwrap();

        let csv = dir.path().join("out.csv");
        books
            .read_blocking(|db| {
                Ok(write_rows(
                    db,
                    ExportFormat::Csv,
                    Box::new(std::fs::File::create(&csv).unwrap()),
                ))
            })
            .unwrap()
            .unwrap();
        let text = std::fs::read_to_string(&csv).unwrap();
        let rows: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(
            rows,
            [
                "txn_id,kind,created_at,account,receipt_id,entry_kind,amount,lot_id,\
                 reason,operator,cashier,clawback_shortfall",
                "1,sale,2026-03-01T12:00:00Z,1,\"R \"\"1\"\", till 2\",accrue,50,1,,,,",
                "2,refund,2026-03-01T12:00:00Z,1,refund-of:1,clawback,-25,1,,,Олег,",
                "3,sale,2026-03-01T12:00:00Z,1,Z,,,,,,,",
                "",
            ]
        );

        let json = dir.path().join("out.jsonl");
        books
            .read_blocking(|db| {
                Ok(write_rows(
                    db,
                    ExportFormat::Json,
                    Box::new(std::fs::File::create(&json).unwrap()),
                ))
            })
            .unwrap()
            .unwrap();
        let text = std::fs::read_to_string(&json).unwrap();
        let rows: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0]["receipt_id"], receipt);
        assert_eq!(rows[1]["amount"], "-25");
        assert_eq!(rows[1]["cashier"], "Олег");
        assert_eq!(rows[1]["clawback_shortfall"], serde_json::Value::Null);
        assert_eq!(rows[2]["entry_kind"], serde_json::Value::Null);
        assert_eq!(rows[2]["amount"], serde_json::Value::Null);
    }
}
