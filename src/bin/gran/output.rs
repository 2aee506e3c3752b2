//! Results: plain text on stdout, or with --json one JSON object per result.

use serde_json::Value;

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
            crate::progress::println(text);
        }
    }
}
