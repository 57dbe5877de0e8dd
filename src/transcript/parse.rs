//! One stream-json line to one [`Event`]; never fails, whatever the line holds.
//!
//! Cheap on purpose: a first pass reads only the `type` key (serde skips everything else without
//! allocating), so `user` lines, which carry tool results and make up most of a big transcript,
//! are never materialised. Only `system`, `assistant`, `rate_limit_event` and `result` lines are
//! read further, and of those only the fields the result needs.

use std::borrow::Cow;

use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::Value;

use super::event::Event;

/// The `type` of an event, borrowed from the line when it has no escapes.
#[derive(Deserialize)]
struct Probe<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
}

/// Parses one line of Claude's stdout (with or without its line ending).
pub fn parse_line(line: &str) -> Event {
    let line = line.trim();
    if !line.starts_with('{') {
        return Event::Text(line.to_string());
    }
    let Ok(probe) = serde_json::from_str::<Probe>(line) else {
        // NB: an object whose `type` is not a string is still JSON, not text.
        return match serde_json::from_str::<IgnoredAny>(line) {
            Ok(_) => Event::Unknown,
            Err(_) => Event::Text(line.to_string()),
        };
    };
    match probe.kind.as_deref() {
        Some("user") => Event::User,
        Some("result") => serde_json::from_str::<Value>(line).map_or(Event::Unknown, Event::Result),
        Some(_) => serde_json::from_str::<Event>(line).unwrap_or(Event::Unknown),
        None => Event::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transcript::event::{AssistantEvent, SystemEvent};

    #[test]
    fn non_json_lines_become_trimmed_text() {
        assert_eq!(
            parse_line("Error: bad key\r\n"),
            Event::Text("Error: bad key".into())
        );
        assert_eq!(parse_line(""), Event::Text(String::new()));
        assert_eq!(parse_line("[1,2]"), Event::Text("[1,2]".into()));
        assert_eq!(parse_line("{not json"), Event::Text("{not json".into()));
        assert_eq!(
            parse_line("{\"type\":\"result\"} trailing"),
            Event::Text("{\"type\":\"result\"} trailing".into())
        );
    }

    #[test]
    fn objects_without_or_with_unknown_type_are_unknown() {
        assert_eq!(parse_line("{}"), Event::Unknown);
        assert_eq!(parse_line(r#"{"type":42}"#), Event::Unknown);
        assert_eq!(
            parse_line(r#"{"type":"stream_event","event":{}}"#),
            Event::Unknown
        );
    }

    #[test]
    fn known_type_with_unreadable_shape_is_unknown_not_an_error() {
        assert_eq!(
            parse_line(r#"{"type":"system","session_id":7}"#),
            Event::Unknown
        );
        assert_eq!(
            parse_line(r#"{"type":"assistant","message":"hi"}"#),
            Event::Unknown
        );
    }

    #[test]
    fn init_is_read_whatever_the_key_order_and_extra_fields() {
        let line = r#"{"model":"m1","tools":["Bash"],"session_id":"s1","subtype":"init","type":"system","new_field":{"x":1}}"#;
        let Event::System(SystemEvent {
            subtype,
            session_id,
            model,
            ..
        }) = parse_line(line)
        else {
            panic!("not a system event");
        };
        assert_eq!(
            (subtype.as_deref(), session_id.as_deref(), model.as_deref()),
            (Some("init"), Some("s1"), Some("m1"))
        );
    }

    #[test]
    fn assistant_blocks_keep_text_and_skip_tool_input() {
        let line = r#"{"type":"assistant","message":{"id":"m","content":[{"type":"text","text":"hi"},{"type":"tool_use","id":"t","name":"Bash","input":{"command":"ls"}}],"stop_reason":null,"usage":{"output_tokens":3}},"session_id":"s"}"#;
        let Event::Assistant(AssistantEvent {
            message: Some(message),
            ..
        }) = parse_line(line)
        else {
            panic!("not an assistant event");
        };
        let blocks = message.blocks();
        assert_eq!(blocks[0].text.as_deref(), Some("hi"));
        assert_eq!(blocks[1].kind.as_deref(), Some("tool_use"));
        assert!(blocks.iter().all(|b| b.is_real()));
        assert_eq!(message.usage.and_then(|u| u.output_tokens), Some(3));
    }

    #[test]
    fn user_lines_are_recognised_without_reading_their_body() {
        let line =
            r#"{"message":{"content":[{"type":"tool_result","content":"x"}]},"type":"user"}"#;
        assert_eq!(parse_line(line), Event::User);
    }

    #[test]
    fn result_is_kept_whole_including_its_type() {
        let Event::Result(v) = parse_line(r#"{"subtype":"success","type":"result","x":[1]}"#)
        else {
            panic!("not a result");
        };
        assert_eq!(v["type"], "result");
        assert_eq!(v["x"][0], 1);
    }

    #[test]
    fn rate_limit_events_keep_their_info() {
        let line = r#"{"type":"rate_limit_event","rate_limit_info":{"status":"rejected","resetsAt":1700000000}}"#;
        let Event::RateLimitEvent(e) = parse_line(line) else {
            panic!("not a rate limit event")
        };
        assert_eq!(e.rate_limit_info.unwrap()["resetsAt"], 1_700_000_000);
    }

    #[test]
    fn every_cut_of_a_genuine_line_is_text_never_a_panic_or_a_false_event() {
        let text =
            include_str!("../../tests/fixtures/transcripts/02-tool-use-bash-bypass.stream.jsonl");
        for line in text.lines() {
            for (at, _) in line.char_indices().skip(1) {
                assert!(
                    matches!(parse_line(&line[..at]), Event::Text(_)),
                    "{}",
                    &line[..at]
                );
            }
        }
    }

    #[test]
    fn every_line_of_the_genuine_transcripts_parses_to_a_known_event() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/transcripts");
        let mut files = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            files += 1;
            for line in text.lines() {
                let event = parse_line(line);
                assert!(!matches!(event, Event::Unknown | Event::Text(_)), "{line}");
            }
        }
        assert_eq!(files, 6);
    }
}
