//! The command line's logs: one `tracing` subscriber for the process, set up from `--log-level`,
//! `--log-format` and the config file's top-level `logging_config` (Ray's), writing text or JSON
//! lines to stderr (and to `logs_dir/serve.log` when given) through a background thread, so a
//! slow terminal or disk never stalls a request (lines past its buffer are dropped, not waited
//! for).
//!
//! The filter is `RUST_LOG` when set, else the level; a deployment's own `log_level` applies to
//! what is logged while its replicas run (see [`ByDeployment`]). Access lines (target
//! `serve::access`) are ordinary `INFO` events (`ERROR` for failures), filtered like the rest.

use std::fmt;
use std::path::PathBuf;

use tracing::level_filters::LevelFilter;
use tracing::subscriber::Interest;
use tracing::{Metadata, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::layer::{Context, Filter, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{Encoding, LogLevel, LoggingConfig};
use crate::request::context;

/// How the process logs.
#[derive(Debug, Clone, Default)]
pub(crate) struct LogSettings {
    /// The process's level (`INFO` when not given); `RUST_LOG` wins over it.
    pub(crate) level: Option<LogLevel>,
    pub(crate) encoding: Encoding,
    /// Also write to `serve.log` in this directory.
    pub(crate) logs_dir: Option<PathBuf>,
    /// `additional_log_standard_attrs`: `filename`/`pathname` and `lineno` add the source place.
    pub(crate) source_place: (bool, bool),
    /// The most verbose level a deployment asks for, if any asks for its own.
    pub(crate) deployments: Option<LevelFilter>,
}

impl LogSettings {
    /// The settings of `logging` (a config file's top level, already under the command line's
    /// flags), with the deployments' own levels from `deployments`.
    pub(crate) fn new(logging: &LoggingConfig, deployments: &[LoggingConfig]) -> Self {
        let attrs = logging.additional_log_standard_attrs.iter().flatten();
        let mut source_place = (false, false);
        for attr in attrs {
            match attr.as_str() {
                "filename" | "pathname" => source_place.0 = true,
                "lineno" => source_place.1 = true,
                _ => {}
            }
        }
        Self {
            level: logging.log_level,
            encoding: logging.encoding.unwrap_or(Encoding::Text),
            logs_dir: logging.logs_dir.clone(),
            source_place,
            deployments: deployments
                .iter()
                .filter_map(|l| l.log_level.map(LogLevel::filter))
                .max(),
        }
    }
}

/// Keeps the log writers' background threads; dropping it flushes what they hold.
pub(crate) struct Guards(#[allow(dead_code)] Vec<tracing_appender::non_blocking::WorkerGuard>);

/// Installs the process's subscriber. Fails (with the reason) when `logs_dir` cannot be opened;
/// does nothing if a subscriber is installed already.
pub(crate) fn install(settings: &LogSettings) -> Result<Guards, String> {
    use tracing_subscriber::fmt::writer::{BoxMakeWriter, MakeWriterExt};

    let (stderr, stderr_guard) = tracing_appender::non_blocking(std::io::stderr());
    let mut guards = vec![stderr_guard];
    let file = match &settings.logs_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create logs_dir {}: {e}", dir.display()))?;
            let path = dir.join("serve.log");
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
            let (file, guard) = tracing_appender::non_blocking(file);
            guards.push(guard);
            Some(file)
        }
        None => None,
    };
    let filter = ByDeployment::new(settings);
    let ansi = file.is_none()
        && settings.encoding == Encoding::Text
        && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let (with_file, with_line) = settings.source_place;
    // One layer writing to both places, or to stderr alone.
    let writer = match file {
        Some(file) => BoxMakeWriter::new(stderr.and(file)),
        None => BoxMakeWriter::new(stderr),
    };
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(ansi)
        .with_file(with_file)
        .with_line_number(with_line);
    let result = match settings.encoding {
        Encoding::Text => tracing_subscriber::registry()
            .with(tracing_subscriber::Layer::with_filter(layer, filter))
            .try_init(),
        Encoding::Json => {
            let layer = layer.fmt_fields(JsonFields).event_format(FlatJson {
                file: with_file,
                line: with_line,
            });
            tracing_subscriber::registry()
                .with(tracing_subscriber::Layer::with_filter(layer, filter))
                .try_init()
        }
    };
    // Already installed (a test harness, or `main` called twice): keep that one.
    drop(result);
    Ok(Guards(guards))
}

/// The filter: `RUST_LOG` or the process's level, except for what is logged while a replica of
/// a deployment with its own `log_level` runs (a method, its constructor, its hooks), which that
/// level decides. The `request` span (request id, deployment, replica) is always on, so every
/// line written inside a request names it.
struct ByDeployment {
    env: EnvFilter,
    /// The most verbose level a deployment asks for; `None`: no deployment has its own.
    deployments: Option<LevelFilter>,
}

impl ByDeployment {
    fn new(settings: &LogSettings) -> Self {
        let level = settings.level.unwrap_or(LogLevel::Info);
        let env = EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| EnvFilter::new(level.filter().to_string()));
        Self {
            env,
            deployments: settings.deployments,
        }
    }

    /// The request scope's span.
    fn is_request_span(meta: &Metadata<'_>) -> bool {
        meta.is_span() && meta.name() == "request" && meta.target() == context::SPAN_TARGET
    }
}

impl<S: Subscriber> Filter<S> for ByDeployment {
    fn enabled(&self, meta: &Metadata<'_>, cx: &Context<'_, S>) -> bool {
        if Self::is_request_span(meta) {
            return true;
        }
        if self.deployments.is_some()
            && meta.is_event()
            && let Some(level) = context::current_logging().and_then(|l| l.level)
        {
            return level >= *meta.level();
        }
        Filter::<S>::enabled(&self.env, meta, cx)
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        if Self::is_request_span(meta) {
            return Interest::always();
        }
        if self.deployments.is_some() && meta.is_event() {
            // Whether it is written depends on which replica runs: ask each time.
            return Interest::sometimes();
        }
        Filter::<S>::callsite_enabled(&self.env, meta)
    }

    // `RUST_LOG`'s span directives (`[request]=debug`) follow the spans it sees.
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        cx: Context<'_, S>,
    ) {
        Filter::<S>::on_new_span(&self.env, attrs, id, cx)
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        cx: Context<'_, S>,
    ) {
        Filter::<S>::on_record(&self.env, id, values, cx)
    }

    fn on_enter(&self, id: &tracing::span::Id, cx: Context<'_, S>) {
        Filter::<S>::on_enter(&self.env, id, cx)
    }

    fn on_exit(&self, id: &tracing::span::Id, cx: Context<'_, S>) {
        Filter::<S>::on_exit(&self.env, id, cx)
    }

    fn on_close(&self, id: tracing::span::Id, cx: Context<'_, S>) {
        Filter::<S>::on_close(&self.env, id, cx)
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        let env = Filter::<S>::max_level_hint(&self.env)?;
        let spans = LevelFilter::INFO;
        Some(
            env.max(spans)
                .max(self.deployments.unwrap_or(LevelFilter::OFF)),
        )
    }
}

/// One JSON object per line, every field at its top level (as Ray's JSON logs): `timestamp`,
/// `level`, `message`, the event's fields, the fields of the spans it is in (`request_id`,
/// `deployment`, `replica`), `target`, and `filename` / `lineno` when asked for.
struct FlatJson {
    file: bool,
    line: bool,
}

impl<S, N> FormatEvent<S, N> for FlatJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> fmt::Result {
        use tracing_subscriber::fmt::time::FormatTime;

        let mut object = serde_json::Map::new();
        let mut timestamp = String::new();
        tracing_subscriber::fmt::time::SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
        object.insert("timestamp".into(), timestamp.into());
        let meta = event.metadata();
        object.insert("level".into(), meta.level().as_str().into());
        // The spans' fields, outermost first, so the innermost span's value wins.
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let extensions = span.extensions();
                let Some(fields) = extensions.get::<FormattedFields<N>>() else {
                    continue;
                };
                if let Ok(serde_json::Value::Object(fields)) =
                    serde_json::from_str::<serde_json::Value>(fields)
                {
                    object.extend(fields);
                }
            }
        }
        event.record(&mut JsonVisitor(&mut object));
        object.insert("target".into(), meta.target().into());
        if self.file
            && let Some(file) = meta.file()
        {
            object.insert("filename".into(), file.into());
        }
        if self.line
            && let Some(line) = meta.line()
        {
            object.insert("lineno".into(), line.into());
        }
        writeln!(writer, "{}", serde_json::Value::Object(object))
    }
}

/// Span fields as a JSON object (what [`FlatJson`] merges into each line).
struct JsonFields;

impl<'writer> FormatFields<'writer> for JsonFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        let mut object = serde_json::Map::new();
        fields.record(&mut JsonVisitor(&mut object));
        write!(writer, "{}", serde_json::Value::Object(object))
    }

    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        let mut object = match serde_json::from_str::<serde_json::Value>(current) {
            Ok(serde_json::Value::Object(object)) => object,
            _ => serde_json::Map::new(),
        };
        fields.record(&mut JsonVisitor(&mut object));
        current.fields = serde_json::Value::Object(object).to_string();
        Ok(())
    }
}

/// Records fields into a JSON object, numbers and booleans as such.
struct JsonVisitor<'a>(&'a mut serde_json::Map<String, serde_json::Value>);

impl tracing::field::Visit for JsonVisitor<'_> {
    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_error(
        &mut self,
        field: &tracing::field::Field,
        value: &(dyn std::error::Error + 'static),
    ) {
        self.0.insert(field.name().into(), value.to_string().into());
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
}
