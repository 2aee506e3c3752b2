//! Results: plain text on stdout, or with --json one JSON object per result.

use gran::{Error, ModelConfig, Result};
use serde_json::Value;
use std::path::Path;

pub struct Out {
    pub json: bool,
    pub quiet: bool,
}

impl Out {
    /// Prints a command's result: `value` (with "type": "result" and the command's name added)
    /// under --json, else the text `human` makes.
    pub fn result(&self, command: &str, mut value: Value, human: impl FnOnce() -> String) {
        if self.json {
            if let Value::Object(map) = &mut value {
                map.insert("type".into(), "result".into());
                map.insert("command".into(), command.into());
            }
            println!("{value}");
        } else {
            let text = human();
            println!("{}", text.trim_end());
        }
    }

    /// A side note for people (what is being loaded, where a file went): stderr, not under
    /// --quiet or --json.
    pub fn note(&self, text: &str) {
        if !self.quiet && !self.json {
            crate::term::println(text);
        }
    }
}

/// Creates the folder a file is to be written in, when it does not exist yet.
pub fn make_parent(path: &Path) -> Result<()> {
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(dir) => std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e)),
        None => Ok(()),
    }
}

/// A model's configuration as the JSON results give it: its fields, numbers and booleans as
/// such, the device as text.
pub fn config_json(c: &ModelConfig) -> serde_json::Value {
    let fields = c.fields().into_iter().map(|(name, text)| {
        let value = serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text));
        (name.to_string(), value)
    });
    Value::Object(fields.collect())
}
