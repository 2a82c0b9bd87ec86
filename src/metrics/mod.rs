//! Prometheus metrics: the series the daemon counts as things happen
//! (requests, jobs, reads, ledger commits) and the gauges read from the
//! live state at each scrape (devices, queues, the OFD backlog), rendered
//! as OpenMetrics text for `/metrics`.
//!
//! One process-wide instance ([`global`]): the counting sites (the method
//! table's dispatch, the device actors, the card service) are far apart
//! and a daemon is one process. Every label value is bounded: method names
//! only from the method table, device names only from the configuration,
//! outcomes from fixed lists.

pub mod refresh;

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::api::methods::METHODS;
use crate::api::rpc::code;

pub use refresh::refresh;

/// The `Content-Type` of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Every series' family name (counters render with `_total`, histograms
/// with `_bucket`/`_sum`/`_count`), for the docs and their tests.
pub const SERIES: [&str; 15] = [
    "posbridge_requests",
    "posbridge_request_duration_seconds",
    "posbridge_device_up",
    "posbridge_device_state",
    "posbridge_print_queue_depth",
    "posbridge_print_jobs",
    "posbridge_printer_paper_out",
    "posbridge_fiscal_queue_depth",
    "posbridge_fiscal_jobs",
    "posbridge_fiscal_unsent_documents",
    "posbridge_fiscal_oldest_unsent_seconds",
    "posbridge_reader_reads",
    "posbridge_reader_errors",
    "posbridge_ledger_commit_duration_seconds",
    "posbridge_ledger_up",
];

/// Latency buckets in seconds: a ping takes well under a millisecond, a
/// fiscal receipt or a central-ledger commit can take seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

fn histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

type L1 = [(&'static str, String); 1];
type L2 = [(&'static str, String); 2];

/// Every series the daemon exports.
pub struct Metrics {
    registry: Registry,
    requests: Family<L2, Counter>,
    request_duration: Family<L1, Histogram, fn() -> Histogram>,
    pub(crate) device_up: Family<L2, Gauge>,
    pub(crate) device_state: Family<L2, Gauge>,
    pub(crate) print_queue_depth: Family<L1, Gauge>,
    print_jobs: Family<L2, Counter>,
    pub(crate) printer_paper_out: Family<L1, Gauge>,
    pub(crate) fiscal_queue_depth: Family<L1, Gauge>,
    fiscal_jobs: Family<L2, Counter>,
    pub(crate) fiscal_unsent: Family<L1, Gauge>,
    pub(crate) fiscal_oldest_unsent: Family<L1, Gauge>,
    reader_reads: Family<L1, Counter>,
    reader_errors: Family<L1, Counter>,
    ledger_commit_duration: Histogram,
    pub(crate) ledger_up: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh set of series, all empty.
    pub fn new() -> Metrics {
        let mut m = Metrics {
            registry: Registry::default(),
            requests: Family::default(),
            request_duration: Family::new_with_constructor(histogram),
            device_up: Family::default(),
            device_state: Family::default(),
            print_queue_depth: Family::default(),
            print_jobs: Family::default(),
            printer_paper_out: Family::default(),
            fiscal_queue_depth: Family::default(),
            fiscal_jobs: Family::default(),
            fiscal_unsent: Family::default(),
            fiscal_oldest_unsent: Family::default(),
            reader_reads: Family::default(),
            reader_errors: Family::default(),
            ledger_commit_duration: histogram(),
            ledger_up: Gauge::default(),
        };
        // Registered clones share their values with the fields.
        let mut r = Registry::default();
        r.register(
            "posbridge_requests",
            "API requests by method and outcome (ok or the error's class), every transport",
            m.requests.clone(),
        );
        r.register(
            "posbridge_request_duration_seconds",
            "API request latency by method",
            m.request_duration.clone(),
        );
        r.register(
            "posbridge_device_up",
            "1 when the device's link is connected, else 0",
            m.device_up.clone(),
        );
        r.register(
            "posbridge_device_state",
            "1 for the device's current link state, 0 for the others",
            m.device_state.clone(),
        );
        r.register(
            "posbridge_print_queue_depth",
            "print jobs queued, printing or held, per printer",
            m.print_queue_depth.clone(),
        );
        r.register(
            "posbridge_print_jobs",
            "print jobs finished, per printer and outcome (done, failed, cancelled)",
            m.print_jobs.clone(),
        );
        r.register(
            "posbridge_printer_paper_out",
            "1 while the printer reports its paper end",
            m.printer_paper_out.clone(),
        );
        r.register(
            "posbridge_fiscal_queue_depth",
            "fiscal jobs pending or being sent, per register",
            m.fiscal_queue_depth.clone(),
        );
        r.register(
            "posbridge_fiscal_jobs",
            "fiscal jobs finished, per register and outcome (done, failed)",
            m.fiscal_jobs.clone(),
        );
        r.register(
            "posbridge_fiscal_unsent_documents",
            "fiscal documents the register has not yet sent to the OFD",
            m.fiscal_unsent.clone(),
        );
        r.register(
            "posbridge_fiscal_oldest_unsent_seconds",
            "age of the oldest document not sent to the OFD, by the register's clock (0 when none)",
            m.fiscal_oldest_unsent.clone(),
        );
        r.register(
            "posbridge_reader_reads",
            "card reads and scans delivered, per reader",
            m.reader_reads.clone(),
        );
        r.register(
            "posbridge_reader_errors",
            "reads that produced no card or code, per reader",
            m.reader_errors.clone(),
        );
        r.register(
            "posbridge_ledger_commit_duration_seconds",
            "latency of the ledger's sale commits and refunds",
            m.ledger_commit_duration.clone(),
        );
        r.register(
            "posbridge_ledger_up",
            "1 when the ledger answers (the store, or the central service in central mode)",
            m.ledger_up.clone(),
        );
        m.registry = r;
        m
    }

    /// One API request answered.
    pub fn request(&self, method: &str, outcome: &'static str, took: Duration) {
        let method = method_label(method);
        self.requests
            .get_or_create(&[
                ("method", method.to_owned()),
                ("outcome", outcome.to_owned()),
            ])
            .inc();
        self.request_duration
            .get_or_create(&[("method", method.to_owned())])
            .observe(took.as_secs_f64());
    }

    /// A print job reached a final state.
    pub fn print_job(&self, printer: &str, outcome: &str) {
        let outcome = match outcome {
            "done" | "failed" | "cancelled" => outcome,
            _ => return,
        };
        self.print_jobs
            .get_or_create(&[
                ("printer", printer.to_owned()),
                ("outcome", outcome.to_owned()),
            ])
            .inc();
    }

    /// A fiscal job reached a final state.
    pub fn fiscal_job(&self, register: &str, done: bool) {
        let outcome = if done { "done" } else { "failed" };
        self.fiscal_jobs
            .get_or_create(&[
                ("register", register.to_owned()),
                ("outcome", outcome.to_owned()),
            ])
            .inc();
    }

    /// A reader delivered a card or a code.
    pub fn reader_read(&self, reader: &str) {
        self.reader_reads
            .get_or_create(&[("reader", reader.to_owned())])
            .inc();
    }

    /// A read produced nothing usable.
    pub fn reader_error(&self, reader: &str) {
        self.reader_errors
            .get_or_create(&[("reader", reader.to_owned())])
            .inc();
    }

    /// A ledger commit (sale, refund, adjustment) took this long.
    pub fn ledger_commit(&self, took: Duration) {
        self.ledger_commit_duration.observe(took.as_secs_f64());
    }

    /// The exposition text of every series.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// Counts a reader's output in the daemon's metrics.
pub fn count_read(out: &crate::devices::ReaderOutput) {
    use crate::devices::ReaderOutput;
    match out {
        ReaderOutput::Card(read) => global().reader_read(&read.reader),
        ReaderOutput::Scan(scan) => global().reader_read(&scan.reader),
        ReaderOutput::Error { reader, .. } => global().reader_error(reader),
    }
}

/// Awaits a ledger commit, observing its latency in the daemon's metrics.
pub async fn timed_commit<F: std::future::Future>(commit: F) -> F::Output {
    let start = std::time::Instant::now();
    let out = commit.await;
    global().ledger_commit(start.elapsed());
    out
}

/// The daemon's metrics.
pub fn global() -> &'static Metrics {
    static GLOBAL: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &GLOBAL
}

/// The method's name when the method table has it, else `other`: a client
/// calling made-up names must not grow the series without bound.
pub fn method_label(method: &str) -> &'static str {
    METHODS
        .iter()
        .find(|s| s.name == method)
        .map_or("other", |s| s.name)
}

/// The class of a JSON-RPC error code, the `outcome` label of a failed
/// request.
pub fn outcome_of(error_code: i64) -> &'static str {
    match error_code {
        code::PARSE_ERROR | code::INVALID_REQUEST | code::INVALID_PARAMS => "invalid",
        code::METHOD_NOT_FOUND => "unknown_method",
        code::LOGIN_REQUIRED | code::FORBIDDEN | code::BAD_TOKEN | code::LOGIN_THROTTLED => {
            "denied"
        }
        code::TOO_MANY_CLIENTS | code::SHUTTING_DOWN | code::BUSY => "busy",
        1100..=1199 => "config",
        1200..=1299 => "device",
        1300..=1399 => "card",
        2000..=2999 => "refused",
        _ => "internal",
    }
}

#[cfg(test)]
mod tests;
