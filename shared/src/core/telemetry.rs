//! Logging: every line a function writes is one JSON object in Lambda's JSON log format, at the level Lambda
//! says.
//!
//! Each line carries `timestamp` (RFC 3339, UTC, milliseconds), `level` (Lambda's names: `TRACE`, `DEBUG`,
//! `INFO`, `WARN`, `ERROR`, and `FATAL` for a panic), `message`, the event's fields, the fields of the spans it
//! happened in (lambda_runtime's span gives `requestId`) and `target` (the module that wrote it). That covers our
//! own events, lambda_runtime's (its events go through the same subscriber), a panic (the hook below: one `FATAL`
//! line, also when lambda_runtime then catches the panic and reports it), a handler's error result
//! ([`reported`]) and the error that stops a process ([`exit_code`]).
//!
//! Why not `lambda_runtime::tracing::init_default_subscriber`: it writes JSON only when `AWS_LAMBDA_LOG_FORMAT`
//! is `JSON`, and then without a timestamp (`without_time`) and with the message nested under `fields`. Lambda
//! gives a line without a valid RFC 3339 `timestamp` or `level` the level INFO, so with `ApplicationLogLevel`
//! set to WARN or ERROR, Lambda dropped every error line a function wrote. Here the format does not depend on
//! `AWS_LAMBDA_LOG_FORMAT` at all: a deployed function always writes JSON, and there is deliberately no
//! human-readable mode (the demo and the tests read the same lines CloudWatch gets; `jq` reads them locally).
//!
//! The level comes from `AWS_LAMBDA_LOG_LEVEL` alone (Lambda sets it from the template's `ApplicationLogLevel`;
//! `RUST_LOG` is not read, so that nothing but the deployed setting decides). ERROR lines pass every valid
//! setting: `FATAL` filters at ERROR here, because Lifeboat writes nothing at FATAL but panics. An unknown value
//! logs at INFO and says so in a WARN line; an unset one logs at INFO, Lambda's default.
//! Release builds compile DEBUG and TRACE call sites out (the workspace's `tracing` feature
//! `release_max_level_info`, for size), so there `DEBUG` and `TRACE` log what `INFO` does.
//!
//! No secrets in fields: events of our own crates never carry one (fields and a constant message), and the
//! dependencies that could (tokio-postgres logs a statement's parameters at DEBUG, the AWS SDK a response's
//! contents at TRACE) are held at INFO whatever the setting; only Lifeboat's crates and lambda_runtime go below.
//! This module must never log an event's payload or an environment variable's value other than the level's.

use std::fmt::{Debug, Display};
use std::future::Future;
use std::io::Write;
use std::process::ExitCode;

use chrono::{SecondsFormat, Utc};
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::filter::{FilterFn, Targets};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// The variable Lambda sets from the function's `ApplicationLogLevel`.
pub const LOG_LEVEL: &str = "AWS_LAMBDA_LOG_LEVEL";

/// The crates whose events follow the level setting below INFO: Lifeboat's own and the Lambda runtime's. Every
/// other crate is held at INFO (see the module docs).
const OWN_CRATES: [&str; 9] = [
    "lifeboat",
    "snapshot",
    "export",
    "rotate",
    "restore",
    "monitor",
    "notify",
    "lambda_runtime",
    "lambda_runtime_api_client",
];

/// What `AWS_LAMBDA_LOG_LEVEL` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LevelSetting {
    /// The most detailed level written.
    pub filter: LevelFilter,
    /// The value was set but is none of Lambda's level names: logging falls back to INFO and says so.
    pub unknown: bool,
}

/// Reads a level setting: Lambda's names, in any case. Unset or blank is INFO (Lambda's default); an unknown
/// value is INFO too, marked so that [`init`] can say so. `FATAL` filters at ERROR: errors always pass.
pub fn level_setting(value: Option<&str>) -> LevelSetting {
    let value = value.map(str::trim).unwrap_or_default();
    let known = |filter| LevelSetting { filter, unknown: false };
    match value.to_ascii_uppercase().as_str() {
        "" | "INFO" => known(LevelFilter::INFO),
        "TRACE" => known(LevelFilter::TRACE),
        "DEBUG" => known(LevelFilter::DEBUG),
        "WARN" => known(LevelFilter::WARN),
        "ERROR" | "FATAL" => known(LevelFilter::ERROR),
        _ => LevelSetting {
            filter: LevelFilter::INFO,
            unknown: true,
        },
    }
}

/// The filter a setting gives: Lifeboat's crates and lambda_runtime at the setting, every other crate at the
/// setting but never below INFO.
pub fn targets(setting: LevelFilter) -> Targets {
    let others = setting.min(LevelFilter::INFO);
    OWN_CRATES
        .iter()
        .fold(Targets::new().with_default(others), |targets, krate| {
            targets.with_target(*krate, setting)
        })
}

/// What is written at a setting: events by [`targets`]; spans at INFO whatever the setting, so that an ERROR
/// line still carries its invocation's `requestId` when INFO events are filtered out.
pub fn filter(setting: LevelFilter) -> FilterFn<impl Fn(&Metadata<'_>) -> bool> {
    let events = targets(setting);
    let spans = targets(setting.max(LevelFilter::INFO));
    FilterFn::new(move |metadata: &Metadata<'_>| {
        let targets = if metadata.is_span() { &spans } else { &events };
        targets.would_enable(metadata.target(), metadata.level())
    })
    .with_max_level_hint(setting.max(LevelFilter::INFO))
}

/// Installs the global subscriber and the panic hook. Call once, first thing in `main`.
pub fn init() {
    let raw = std::env::var(LOG_LEVEL).ok();
    let setting = level_setting(raw.as_deref());
    let layer = JsonLines::new(stdout_line).with_filter(filter(setting.filter));
    // A second call (tests that start several functions in one process) keeps the first subscriber.
    let _ = tracing_subscriber::registry().with(layer).try_init();
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_owned());
        let mut fields = Map::new();
        if let Some(location) = info.location() {
            fields.insert("location".into(), Value::String(location.to_string()));
        }
        fields.insert("panic".into(), Value::String(message));
        stdout_line(&line("FATAL", "panicked", "panic", fields));
    }));
    if setting.unknown {
        tracing::warn!(
            variable = LOG_LEVEL,
            value = raw.as_deref().unwrap_or_default(),
            using = "INFO",
            "unknown log level; logging at INFO"
        );
    }
}

/// Awaits one invocation and writes an ERROR line when it fails, inside the invocation's span: lambda_runtime
/// reports a handler's error to the runtime API but writes no line of its own.
pub async fn reported<T, E: Display>(invocation: impl Future<Output = Result<T, E>>) -> Result<T, E> {
    let result = invocation.await;
    if let Err(error) = &result {
        tracing::error!(error = %error, "invocation failed");
    }
    result
}

/// The exit code of a process's result, its error written as an ERROR line first (instead of Rust's
/// `Error: <Debug>` text on standard error, which Lambda would read as an INFO line).
pub fn exit_code<E: Display>(result: Result<(), E>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = %error, "the function stopped");
            ExitCode::FAILURE
        }
    }
}

/// One log line: the reserved keys over the fields, then a newline.
fn line(level: &str, message: &str, target: &str, fields: Map<String, Value>) -> Vec<u8> {
    let mut object = fields;
    object.insert(
        "timestamp".into(),
        Value::String(Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)),
    );
    object.insert("level".into(), Value::String(level.to_owned()));
    object.insert("message".into(), Value::String(message.to_owned()));
    object.insert("target".into(), Value::String(target.to_owned()));
    let mut bytes = serde_json::to_vec(&Value::Object(object)).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// Standard output, one whole line per write, so that lines of concurrent tasks (and the metrics' EMF lines)
/// never interleave. A failed write is dropped: there is nowhere else to say it.
fn stdout_line(bytes: &[u8]) {
    let _ = std::io::stdout().lock().write_all(bytes);
}

/// Where whole lines go: standard output in a function, a buffer in a test.
type Sink = dyn Fn(&[u8]) + Send + Sync;

/// The layer that writes each event as one JSON line through `sink`.
pub struct JsonLines {
    sink: Box<Sink>,
}

impl Debug for JsonLines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JsonLines")
    }
}

impl JsonLines {
    /// Writes each whole line (newline included) with one call of `sink`.
    pub fn new(sink: impl Fn(&[u8]) + Send + Sync + 'static) -> Self {
        Self { sink: Box::new(sink) }
    }
}

/// A span's fields, kept in its extensions until its events are written.
struct SpanFields(Map<String, Value>);

/// Collects fields as JSON values: numbers and booleans as such, everything else as its text.
struct Collect<'a> {
    fields: &'a mut Map<String, Value>,
    message: Option<String>,
}

impl Visit for Collect<'_> {
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.fields.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.fields.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.fields.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.fields.insert(field.name().into(), value.into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.record(field, value.to_owned());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.record(field, value.to_string());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.record(field, format!("{value:?}"));
    }
}

impl Collect<'_> {
    fn record(&mut self, field: &Field, text: String) {
        if field.name() == "message" {
            self.message = Some(text);
        } else {
            self.fields.insert(field.name().into(), Value::String(text));
        }
    }
}

/// Lambda's name of a level (tracing's names are Lambda's, FATAL aside).
fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::TRACE => "TRACE",
        Level::DEBUG => "DEBUG",
        Level::INFO => "INFO",
        Level::WARN => "WARN",
        Level::ERROR => "ERROR",
    }
}

impl<S> Layer<S> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &tracing::span::Attributes<'_>, id: &tracing::span::Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Map::new();
        let mut collect = Collect {
            fields: &mut fields,
            message: None,
        };
        attrs.record(&mut collect);
        span.extensions_mut().insert(SpanFields(fields));
    }

    fn on_record(&self, id: &tracing::span::Id, values: &tracing::span::Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(SpanFields(fields)) = extensions.get_mut::<SpanFields>() {
            values.record(&mut Collect { fields, message: None });
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        // The outermost span's fields first, so that an inner span's and then the event's own win.
        let mut fields = Map::new();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(SpanFields(span_fields)) = span.extensions().get::<SpanFields>() {
                    fields.extend(span_fields.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
            }
        }
        let mut collect = Collect {
            fields: &mut fields,
            message: None,
        };
        event.record(&mut collect);
        let message = collect.message.take().unwrap_or_default();
        let metadata = event.metadata();
        (self.sink)(&line(level_name(metadata.level()), &message, metadata.target(), fields));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    fn capture(setting: LevelFilter, emit: impl FnOnce()) -> Vec<Value> {
        let lines = Arc::new(Mutex::new(Vec::<u8>::new()));
        let sink = Arc::clone(&lines);
        let layer = JsonLines::new(move |bytes: &[u8]| sink.lock().unwrap().extend_from_slice(bytes))
            .with_filter(filter(setting));
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), emit);
        let text = String::from_utf8(lines.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    }

    #[test]
    fn every_lambda_level_name_is_read_in_any_case_and_blank_is_info() {
        for (value, filter) in [
            ("TRACE", LevelFilter::TRACE),
            ("debug", LevelFilter::DEBUG),
            ("Info", LevelFilter::INFO),
            ("WARN", LevelFilter::WARN),
            ("ERROR", LevelFilter::ERROR),
            (" ", LevelFilter::INFO),
        ] {
            assert_eq!(
                level_setting(Some(value)),
                LevelSetting { filter, unknown: false },
                "{value}"
            );
        }
        assert_eq!(level_setting(None).filter, LevelFilter::INFO);
    }

    #[test]
    fn no_valid_setting_filters_out_an_error() {
        for value in ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL", "fatal"] {
            let setting = level_setting(Some(value));
            assert!(!setting.unknown, "{value}");
            assert!(setting.filter >= LevelFilter::ERROR, "{value} filters errors out");
        }
    }

    #[test]
    fn an_unknown_setting_logs_at_info_and_is_marked() {
        for value in ["verbose", "warning", "off", "0"] {
            assert_eq!(
                level_setting(Some(value)),
                LevelSetting {
                    filter: LevelFilter::INFO,
                    unknown: true
                },
                "{value}"
            );
        }
    }

    #[test]
    fn a_line_is_one_object_with_timestamp_level_message_and_the_spans_fields() {
        let lines = capture(LevelFilter::INFO, || {
            let span = tracing::info_span!("invocation", requestId = "req-1");
            let _entered = span.enter();
            tracing::info!(db = "orders", count = 3_u64, "snapshot started");
        });
        assert_eq!(lines.len(), 1, "{lines:?}");
        let line = &lines[0];
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["message"], "snapshot started");
        assert_eq!(line["db"], "orders");
        assert_eq!(line["count"], 3);
        assert_eq!(line["requestId"], "req-1");
        let timestamp = line["timestamp"].as_str().unwrap();
        assert!(
            chrono::DateTime::parse_from_rfc3339(timestamp).is_ok(),
            "{timestamp} is not RFC 3339"
        );
    }

    #[test]
    fn at_error_only_errors_pass_and_a_failed_invocation_writes_one() {
        let lines = capture(level_setting(Some("ERROR")).filter, || {
            let span = tracing::info_span!("invocation", requestId = "req-2");
            let _entered = span.enter();
            tracing::info!("quiet");
            tracing::warn!("quiet too");
            let failed: Result<(), &str> = block_on(reported(async { Err("no such database") }));
            assert!(failed.is_err());
        });
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(lines[0]["level"], "ERROR");
        assert_eq!(lines[0]["message"], "invocation failed");
        assert_eq!(lines[0]["requestId"], "req-2", "the span's fields are kept at ERROR");
        assert_eq!(lines[0]["error"], "no such database");
    }

    #[test]
    fn dependencies_stay_at_info_when_lifeboat_logs_at_debug() {
        let lines = capture(LevelFilter::DEBUG, || {
            tracing::debug!(target: "tokio_postgres::query", "executing statement with parameters");
            tracing::debug!(target: "lifeboat::rds", "ours");
            tracing::debug!(target: "lambda_runtime::runtime", "the runtime's");
            tracing::info!(target: "aws_smithy_runtime", "an info line of a dependency");
        });
        let messages: Vec<&str> = lines.iter().map(|l| l["message"].as_str().unwrap()).collect();
        assert_eq!(messages, ["ours", "the runtime's", "an info line of a dependency"]);
    }

    #[test]
    fn a_stopping_error_is_written_and_fails_the_process() {
        let lines = capture(LevelFilter::ERROR, || {
            assert_eq!(exit_code(Err("invalid configuration")), ExitCode::FAILURE);
            assert_eq!(exit_code::<&str>(Ok(())), ExitCode::SUCCESS);
        });
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(lines[0]["message"], "the function stopped");
        assert_eq!(lines[0]["error"], "invalid configuration");
    }

    /// Runs a future that never waits (the tests' ready futures) without a runtime.
    fn block_on<F: Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }
}
