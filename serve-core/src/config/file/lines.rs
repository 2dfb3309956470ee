//! Where a key is in a config file's text, for errors that say `hello.yaml:14:`.
//!
//! serde hands over the values and forgets where they were; this finds them again with a plain
//! text search, not a second parse: the entry of an application, then of a deployment, by its
//! `name`, then the key's segments one after the other inside that entry. It reads the layouts
//! Ray's docs and the `config` command write — YAML block sequences of `- name: X` entries (flow
//! mappings such as `{min_replicas: 0}` are fine as values), TOML `[[applications]]` and
//! `[[applications.deployments]]` tables (with sub-tables, inline tables or dotted keys) — and
//! answers `None` when it cannot find the entry, so an error then simply has no line.

use std::ops::Range;

/// A config file's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Yaml,
    Toml,
}

/// The line (from 1) of `key` in a config file's `text`: inside the entry of application `app`
/// when given, and inside that of deployment `deployment` when given. A nested key is dotted
/// (`autoscaling_config.min_replicas`); each segment is looked for after the one before it. When
/// a segment is not in the text (a value left to its default), the line of the last segment
/// found answers, or else the line of the entry's `name`; `None` when not even the entry is there.
pub(crate) fn line_of(
    text: &str,
    format: Format,
    app: Option<&str>,
    deployment: Option<&str>,
    key: Option<&str>,
) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let mut scope = 0..lines.len();
    let mut found = None;
    for (table, name) in [
        ("applications", app),
        ("applications.deployments", deployment),
    ] {
        let Some(name) = name else { continue };
        let entry = match format {
            // YAML nests `deployments:` in the application's entry: the last part of the table.
            Format::Yaml => yaml_entry(&lines, &scope, table.rsplit('.').next()?, name),
            Format::Toml => toml_entry(&lines, &scope, table, name),
        }?;
        found = Some(entry.start);
        scope = entry;
    }
    let mut at = (scope.start, 0);
    for segment in key.into_iter().flat_map(|k| k.split('.')) {
        let Some(next) = find_key(&lines, format, &scope, at, segment) else {
            break;
        };
        found = Some(next.0);
        at = next;
    }
    found.map(|line| line + 1)
}

/// Whether a line has nothing to search: blank, or only a comment.
fn blank(line: &str) -> bool {
    let line = line.trim();
    line.is_empty() || line.starts_with('#')
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

/// The entry with `name: {name}` of the YAML block sequence under the key `list` in `scope`: from
/// its `name` line to the last line indented past the entry's `-`.
fn yaml_entry(
    lines: &[&str],
    scope: &Range<usize>,
    list: &str,
    name: &str,
) -> Option<Range<usize>> {
    let list_line = scope
        .clone()
        .find(|&i| !blank(lines[i]) && key_in(lines[i], Format::Yaml, list, 0).is_some())?;
    let first = (list_line + 1..scope.end).find(|&i| !blank(lines[i]))?;
    let dash = indent(lines[first]);
    let after_dash = lines[first][dash..].strip_prefix('-')?;
    // Where an entry's keys start: past `- ` on its first line, at that indent on the others.
    let content = lines[first].len() - after_dash.trim_start().len();
    let is_item = |line: &str| indent(line) == dash && line[dash..].starts_with('-');
    let end_of_list = (first + 1..scope.end)
        .find(|&i| {
            !blank(lines[i])
                && (indent(lines[i]) < dash || indent(lines[i]) == dash && !is_item(lines[i]))
        })
        .unwrap_or(scope.end);
    let start = (first..end_of_list).find(|&i| {
        let line = lines[i];
        let keys = if is_item(line) {
            line[dash + 1..].trim_start()
        } else if indent(line) == content {
            &line[content..]
        } else {
            return false;
        };
        named(keys, Format::Yaml, name)
    })?;
    let end = (start + 1..end_of_list)
        .find(|&i| !blank(lines[i]) && indent(lines[i]) < content)
        .unwrap_or(end_of_list);
    Some(start..end)
}

/// The `[[table]]` of `scope` whose own keys (before any sub-table) include `name = "{name}"`:
/// from its header to the next header that is not one of its sub-tables.
fn toml_entry(
    lines: &[&str],
    scope: &Range<usize>,
    table: &str,
    name: &str,
) -> Option<Range<usize>> {
    let inside = format!("{table}.");
    let headers = scope.clone().filter(|&i| {
        lines[i].trim_start().starts_with("[[") && header(lines[i]).as_deref() == Some(table)
    });
    for start in headers {
        let end = (start + 1..scope.end)
            .find(|&i| header(lines[i]).is_some_and(|h| !h.starts_with(&inside)))
            .unwrap_or(scope.end);
        let mut own = (start + 1..end).take_while(|&i| header(lines[i]).is_none());
        if own.any(|i| named(lines[i].trim_start(), Format::Toml, name)) {
            return Some(start..end);
        }
    }
    None
}

/// The name of the TOML table a header line opens (`[[applications.deployments]]`,
/// `[applications.deployments.autoscaling_config]`), spaces left out; `None` for other lines.
fn header(line: &str) -> Option<String> {
    let inner = line.trim().strip_prefix('[')?.trim_start_matches('[');
    let name: String = inner[..inner.find(']')?]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let is_name = |c: char| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '"' | '\'');
    (!name.is_empty() && name.chars().all(is_name)).then_some(name)
}

/// Whether `keys` starts with the key `name` whose value is `value` (quoted or not).
fn named(keys: &str, format: Format, value: &str) -> bool {
    let Some(rest) = keys.strip_prefix("name") else {
        return false;
    };
    let separator = match format {
        Format::Yaml => ':',
        Format::Toml => '=',
    };
    let Some(given) = rest.trim_start().strip_prefix(separator) else {
        return false;
    };
    let given = given.split(" #").next().unwrap_or_default().trim();
    let unquoted = ['"', '\'']
        .into_iter()
        .find_map(|q| given.strip_prefix(q)?.strip_suffix(q));
    unquoted.unwrap_or(given) == value
}

/// The position just past the key `key` in `scope`, from `at` (a line and a column) on.
fn find_key(
    lines: &[&str],
    format: Format,
    scope: &Range<usize>,
    at: (usize, usize),
    key: &str,
) -> Option<(usize, usize)> {
    (at.0..scope.end).find_map(|i| {
        let from = if i == at.0 { at.1 } else { 0 };
        let column = (!blank(lines[i])).then(|| key_in(lines[i], format, key, from))??;
        Some((i, column))
    })
}

/// The column just past the key `key` in `line`, from column `from` on: `key` as a whole word,
/// quoted or not, followed by `:` in YAML, and in TOML by `=` (a value), `.` (a dotted key) or
/// `]` (a table header).
fn key_in(line: &str, format: Format, key: &str, from: usize) -> Option<usize> {
    let word = |c: char| c.is_alphanumeric() || matches!(c, '_' | '-');
    line.get(from..)?.match_indices(key).find_map(|(at, _)| {
        let (start, end) = (from + at, from + at + key.len());
        if line[..start].chars().next_back().is_some_and(word) {
            return None;
        }
        let rest = &line[end..];
        let rest = rest.strip_prefix(['"', '\'']).unwrap_or(rest).trim_start();
        let is_key = match format {
            Format::Yaml => rest
                .strip_prefix(':')
                .is_some_and(|v| v.is_empty() || v.starts_with([' ', '\t'])),
            Format::Toml => {
                (rest.starts_with('=') && !rest.starts_with("==")) || rest.starts_with(['.', ']'])
            }
        };
        is_key.then_some(end)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two applications; the first is named like one of its deployments, as `config` prints it.
    const YAML: &str = "\
http_options:
  port: 8000
  request_timeout_s: 0
applications:
- name: Classifier
  route_prefix: /
  deployments:
  - name: Spanish
    num_replicas: 3
    # health_check_period_s: 1 (a comment is not the key)
    health_check_period_s: 0
    ray_actor_options:
      num_cpus: 1
      resources: {a100: 1, \"accelerator_type:A100\": -1}
  - name: \"Classifier\"
    autoscaling_config: {min_replicas: 2}
    user_config:
      name: Spanish
- name: other
  deployments:
  - max_ongoing_requests: 0
    name: Spanish
    health_check_period_s: 5
";

    fn yaml(app: Option<&str>, deployment: Option<&str>, key: &str) -> Option<usize> {
        line_of(YAML, Format::Yaml, app, deployment, Some(key))
    }

    #[test]
    fn yaml_keys_are_found_in_their_deployments_entry() {
        let spanish = (Some("Classifier"), Some("Spanish"));
        assert_eq!(yaml(spanish.0, spanish.1, "num_replicas"), Some(9));
        assert_eq!(
            yaml(spanish.0, spanish.1, "health_check_period_s"),
            Some(11)
        );
        assert_eq!(
            yaml(spanish.0, spanish.1, "ray_actor_options.num_cpus"),
            Some(13)
        );
        let resources = "ray_actor_options.resources";
        assert_eq!(
            yaml(spanish.0, spanish.1, &format!("{resources}.a100")),
            Some(14)
        );
        let quoted = format!("{resources}.accelerator_type:A100");
        assert_eq!(yaml(spanish.0, spanish.1, &quoted), Some(14));
        assert_eq!(yaml(spanish.0, spanish.1, "name"), Some(8));
        // The deployment named like its application, and a key inside a flow mapping.
        let key = "autoscaling_config.min_replicas";
        assert_eq!(yaml(Some("Classifier"), Some("Classifier"), key), Some(16));
        // The same deployment name in the second application; `name` not the entry's first key.
        let other = (Some("other"), Some("Spanish"));
        assert_eq!(yaml(other.0, other.1, "health_check_period_s"), Some(23));
        // A key before `name` is not searched: the entry's line.
        assert_eq!(yaml(other.0, other.1, "max_ongoing_requests"), Some(22));
        // Application keys, and keys at the top of the file.
        assert_eq!(yaml(Some("Classifier"), None, "route_prefix"), Some(6));
        assert_eq!(yaml(None, None, "http_options.request_timeout_s"), Some(3));
    }

    #[test]
    fn a_yaml_key_not_written_points_at_what_holds_it() {
        let (app, spanish) = (Some("Classifier"), Some("Spanish"));
        // A default: the line of its parent, else of the entry.
        let key = "autoscaling_config.max_replicas";
        assert_eq!(yaml(app, Some("Classifier"), key), Some(16));
        assert_eq!(yaml(app, spanish, "max_queued_requests"), Some(8));
        // Not in the next entry, nor in a user_config's values.
        assert_eq!(yaml(app, Some("Classifier"), "num_replicas"), Some(15));
        assert_eq!(yaml(app, spanish, "user_config.name"), Some(8));
        // No such entry: no line.
        assert_eq!(yaml(app, Some("German"), "num_replicas"), None);
        assert_eq!(yaml(Some("third"), spanish, "num_replicas"), None);
        assert_eq!(yaml(None, None, "graceful_shutdown_timeout_s"), None);
    }

    const TOML: &str = r#"
[http_options]
request_timeout_s = -1

[[applications]]
name = "Classifier"

[[applications.deployments]]
name = "Spanish"
num_replicas = 3
ray_actor_options = { num_cpus = -1, resources = { a100 = 1 } }

[[applications.deployments]]
name = 'Classifier' # named like its application
health_check_period_s = 0
autoscaling_config.max_replicas = 4

[applications.deployments.autoscaling_config]
min_replicas = 8

[[applications]]
name = "other"
[[applications.deployments]]
name = "Spanish"
num_replicas = 0
"#;

    fn toml(app: Option<&str>, deployment: Option<&str>, key: &str) -> Option<usize> {
        line_of(TOML, Format::Toml, app, deployment, Some(key))
    }

    #[test]
    fn toml_keys_are_found_in_their_deployments_table() {
        let app = Some("Classifier");
        assert_eq!(toml(app, Some("Spanish"), "num_replicas"), Some(10));
        assert_eq!(
            toml(app, Some("Spanish"), "ray_actor_options.num_cpus"),
            Some(11)
        );
        let key = "ray_actor_options.resources.a100";
        assert_eq!(toml(app, Some("Spanish"), key), Some(11));
        assert_eq!(
            toml(app, Some("Classifier"), "health_check_period_s"),
            Some(15)
        );
        let key = "autoscaling_config.max_replicas";
        assert_eq!(toml(app, Some("Classifier"), key), Some(16));
        // In the deployment's sub-table.
        let key = "autoscaling_config.min_replicas";
        assert_eq!(toml(app, Some("Classifier"), key), Some(19));
        // The second application's deployment of the same name.
        assert_eq!(
            toml(Some("other"), Some("Spanish"), "num_replicas"),
            Some(25)
        );
        assert_eq!(toml(None, None, "http_options.request_timeout_s"), Some(3));
    }

    #[test]
    fn a_toml_key_not_written_points_at_what_holds_it() {
        let app = Some("Classifier");
        // The entry starts at its table's header.
        assert_eq!(toml(app, Some("Spanish"), "max_queued_requests"), Some(8));
        assert_eq!(toml(app, Some("Spanish"), "name"), Some(9));
        assert_eq!(toml(app, Some("German"), "num_replicas"), None);
        assert_eq!(
            toml(Some("other"), Some("Classifier"), "num_replicas"),
            None
        );
    }

    #[test]
    fn keys_are_whole_words_followed_by_their_separator() {
        assert_eq!(
            key_in("  num_cpus: 1", Format::Yaml, "num_cpus", 0),
            Some(10)
        );
        assert_eq!(key_in("  num_cpus:", Format::Yaml, "num_cpus", 0), Some(10));
        assert_eq!(
            key_in("  my_num_cpus: 1", Format::Yaml, "num_cpus", 0),
            None
        );
        assert_eq!(
            key_in("  name: num_cpus", Format::Yaml, "num_cpus", 0),
            None
        );
        assert_eq!(key_in("  url: http://x", Format::Yaml, "http", 0), None);
        assert_eq!(key_in("{a: 1, b: 2}", Format::Yaml, "b", 0), Some(8));
        assert_eq!(key_in("{a: 1, b: 2}", Format::Yaml, "a", 2), None);
        assert_eq!(key_in("num_cpus=1", Format::Toml, "num_cpus", 0), Some(8));
        assert_eq!(
            key_in("x = num_cpus == 1", Format::Toml, "num_cpus", 0),
            None
        );
        assert_eq!(key_in("[a.b . c]", Format::Toml, "b", 0), Some(4));
        assert_eq!(
            header("[[ applications.deployments ]]").as_deref(),
            Some("applications.deployments")
        );
        assert_eq!(header("  [1, 2],"), None);
        assert_eq!(header("name = \"[x]\""), None);
    }
}
