//! Identifiers of one run as Kubernetes sees them (SPEC §5 steps 1 and 5): label values, the Job
//! and Secret names, and the label set. Pure and deterministic: the same request always gives the
//! same names, so a restarted adapter finds its own objects.

use std::collections::BTreeMap;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{RunRequest, Runtime};
use crate::error::ErrorCode;

/// Longest label value Kubernetes accepts (and longest Job name, since it becomes the
/// `job-name` label of the Job's pods).
pub const LABEL_VALUE_MAX: usize = 63;

/// Room kept after the Job name for a Secret suffix `-NN` (at most 11 prompt chunks of 768 KiB
/// fit the 8 MiB prompt limit), so every Secret name is also a valid label value.
const SECRET_SUFFIX_ROOM: usize = 4;

/// Hex digits of the id hash appended to a label value that sanitising changed, so distinct ids
/// stay distinct labels.
const LABEL_HASH_HEX: usize = 8;

/// Hex digits of the (agent, run) hash at the end of the Job name.
const JOB_HASH_HEX: usize = 6;

/// `app.kubernetes.io/managed-by`
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// `app.kubernetes.io/component`
pub const LABEL_COMPONENT: &str = "app.kubernetes.io/component";
/// `paperclip.io/adapter-type`
pub const LABEL_ADAPTER_TYPE: &str = "paperclip.io/adapter-type";
/// `paperclip.io/agent-id`
pub const LABEL_AGENT_ID: &str = "paperclip.io/agent-id";
/// `paperclip.io/run-id`
pub const LABEL_RUN_ID: &str = "paperclip.io/run-id";
/// `paperclip.io/company-id`
pub const LABEL_COMPANY_ID: &str = "paperclip.io/company-id";
/// `paperclip.io/task-id`
pub const LABEL_TASK_ID: &str = "paperclip.io/task-id";
/// `paperclip.io/session-id`
pub const LABEL_SESSION_ID: &str = "paperclip.io/session-id";
/// The adapter type, as Paperclip registers it and as the adapter-type label carries it.
pub const ADAPTER_TYPE: &str = "claude_k8s";

/// An id that cannot name Kubernetes objects.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// `agent.id` has no character usable in a label value.
    #[error("agent id {0:?} has no character usable in a Kubernetes label value ([A-Za-z0-9])")]
    AgentId(String),
    /// `runId` has no character usable in a label value.
    #[error("run id {0:?} has no character usable in a Kubernetes label value ([A-Za-z0-9])")]
    RunId(String),
}

impl Error {
    /// The SPEC error code for this failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::AgentId(_) => ErrorCode::AgentIdInvalid,
            Self::RunId(_) => ErrorCode::ConfigInvalid,
        }
    }
}

/// The ids of one run, as label values, plus the Job name derived from them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunIds {
    /// `agent.id` as a label value (never empty).
    pub agent: String,
    /// `runId` as a label value (never empty).
    pub run: String,
    /// `agent.companyId` as a label value, if it has one.
    pub company: Option<String>,
    /// The task (`context.taskId`, else `context.issueId`, else `runtime.taskKey`) as a label value.
    pub task: Option<String>,
    /// The resumed session as a label value.
    pub session: Option<String>,
    /// `ac-<agent slug>-<run slug>-<6 hex>`: RFC 1123, at most 59 characters, unique per
    /// (agent id, run id).
    pub job_name: String,
}

impl RunIds {
    /// Derives every id of the run. Call before any cluster request.
    ///
    /// # Errors
    /// [`Error::AgentId`] / [`Error::RunId`] when the id sanitises to nothing.
    pub fn from_request(req: &RunRequest) -> Result<Self, Error> {
        let agent =
            label_value(&req.agent.id).ok_or_else(|| Error::AgentId(req.agent.id.clone()))?;
        let run = label_value(&req.run_id).ok_or_else(|| Error::RunId(req.run_id.clone()))?;
        Ok(Self {
            job_name: job_name(&req.agent.id, &req.run_id),
            agent,
            run,
            company: label_value(&req.agent.company_id),
            task: task_id(req).and_then(label_value),
            session: req.runtime.resume_session().and_then(label_value),
        })
    }

    /// Name of the `index`-th per-Job Secret: `<job>-<index>`.
    pub fn secret_name(&self, index: usize) -> String {
        format!("{}-{index}", self.job_name)
    }

    /// Labels for the Job, its Secrets and its pod template; absent ids are omitted.
    pub fn labels(&self) -> BTreeMap<String, String> {
        let fixed = [
            (LABEL_MANAGED_BY, Some("paperclip")),
            (LABEL_COMPONENT, Some("agent-job")),
            (LABEL_ADAPTER_TYPE, Some(ADAPTER_TYPE)),
            (LABEL_AGENT_ID, Some(self.agent.as_str())),
            (LABEL_RUN_ID, Some(self.run.as_str())),
            (LABEL_COMPANY_ID, self.company.as_deref()),
            (LABEL_TASK_ID, self.task.as_deref()),
            (LABEL_SESSION_ID, self.session.as_deref()),
        ];
        fixed
            .into_iter()
            .filter_map(|(k, v)| Some((k.to_string(), v?.to_string())))
            .collect()
    }

    /// Label selector for this agent's Jobs of this adapter (the concurrency guard's list).
    pub fn agent_selector(&self) -> String {
        format!(
            "{LABEL_AGENT_ID}={},{LABEL_ADAPTER_TYPE}={ADAPTER_TYPE}",
            self.agent
        )
    }
}

/// The session a run resumes, and why a saved one is not, as `claude_local` decides it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resume<'a> {
    /// The session to pass to `--resume`.
    pub session: Option<&'a str>,
    /// A `[paperclip]` stdout line explaining why the saved session starts fresh instead.
    pub note: Option<String>,
}

/// Decides whether the saved session (SPEC §3) can be resumed in `cwd`: the CLI only knows
/// sessions by UUID, and only in the working directory they were saved in
/// (`sessionParams.cwd`), so anything else would fail the run with "No conversation found".
pub fn session_to_resume<'a>(runtime: &'a Runtime, cwd: &str) -> Resume<'a> {
    let Some(id) = runtime.resume_session() else {
        return Resume {
            session: None,
            note: None,
        };
    };
    let saved_cwd = runtime
        .session_params
        .as_ref()
        .and_then(|p| p.get("cwd"))
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty());
    let note = if !is_uuid(id) {
        Some(format!(
            "[paperclip] Claude session \"{id}\" is not a valid UUID and will not be passed to --resume."
        ))
    } else {
        saved_cwd
            .filter(|saved| trim_slashes(saved) != trim_slashes(cwd))
            .map(|saved| {
                format!(
                    "[paperclip] Claude session \"{id}\" was saved for cwd \"{saved}\" and will not be resumed in \"{cwd}\"."
                )
            })
    };
    Resume {
        session: note.is_none().then_some(id),
        note,
    }
}

fn trim_slashes(path: &str) -> &str {
    match path.trim_end_matches('/') {
        "" => "/",
        trimmed => trimmed,
    }
}

/// `8-4-4-4-12` hex digits, any case: how Claude names sessions and Paperclip names objects.
pub fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The task of the run: `context.taskId`, else `context.issueId`, else `runtime.taskKey`
/// (trimmed, blank counting as absent).
pub fn task_id(req: &RunRequest) -> Option<&str> {
    let from_context = |key: &str| req.context.get(key).and_then(Value::as_str).map(str::trim);
    from_context("taskId")
        .filter(|s| !s.is_empty())
        .or_else(|| from_context("issueId").filter(|s| !s.is_empty()))
        .or_else(|| {
            req.runtime
                .task_key
                .as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
        })
}

/// Sanitises an id to a label value: at most 63 of `[A-Za-z0-9._-]`, starting and ending
/// alphanumeric. An id that is already valid is kept as is; one that had to change gets a hash
/// of the original appended, so two different ids never share a label. `None` when nothing
/// usable is left.
pub fn label_value(raw: &str) -> Option<String> {
    let kept: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = kept.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    if trimmed.is_empty() {
        return None;
    }
    if trimmed == raw && raw.len() <= LABEL_VALUE_MAX {
        return Some(raw.to_string());
    }
    let room = LABEL_VALUE_MAX - 1 - LABEL_HASH_HEX;
    let head =
        trimmed[..trimmed.len().min(room)].trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    Some(format!(
        "{head}-{}",
        hex_digest(raw.as_bytes(), LABEL_HASH_HEX)
    ))
}

/// `ac-<agent slug>-<run slug>-<6 hex of sha256(agent id \0 run id)>`, lowercase RFC 1123, short
/// enough that `<job>-NN` Secret names are valid label values too.
pub fn job_name(agent_id: &str, run_id: &str) -> String {
    let hash = hex_digest(format!("{agent_id}\0{run_id}").as_bytes(), JOB_HASH_HEX);
    let budget = LABEL_VALUE_MAX - SECRET_SUFFIX_ROOM - "ac---".len() - JOB_HASH_HEX;
    let agent = slug(agent_id);
    let run = slug(run_id);
    // Give each slug half the budget, and whatever one leaves unused to the other.
    let half = budget / 2;
    let run_len = run.len().min(budget - agent.len().min(half));
    let agent_len = agent.len().min(budget - run_len);
    let parts = [&agent[..agent_len], &run[..run_len]].map(|s| s.trim_matches('-'));
    let slugs: Vec<&str> = parts.into_iter().filter(|s| !s.is_empty()).collect();
    if slugs.is_empty() {
        format!("ac-{hash}")
    } else {
        format!("ac-{}-{hash}", slugs.join("-"))
    }
}

/// Lowercase `[a-z0-9]` runs joined by single dashes.
fn slug(raw: &str) -> String {
    raw.to_ascii_lowercase()
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}

/// The first `hex` hex digits of SHA-256 of `bytes`.
fn hex_digest(bytes: &[u8], hex: usize) -> String {
    let digest = Sha256::digest(bytes);
    let mut out: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    out.truncate(hex);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::config::{is_dns_label, is_label_value};
    use crate::plan::{Agent, Runtime};
    use serde_json::json;

    const UUID_A: &str = "5c5b3b2b-60ad-48d0-85b1-41c88054bd2d";
    const UUID_B: &str = "89c168bc-9f36-4293-9171-0f635b64349c";

    fn request(agent: &str, run: &str) -> RunRequest {
        RunRequest {
            run_id: run.into(),
            agent: Agent {
                id: agent.into(),
                company_id: "co-1".into(),
                name: "Ada".into(),
            },
            ..RunRequest::default()
        }
    }

    fn odd_ids() -> Vec<String> {
        vec![
            UUID_A.into(),
            "Agent Ünïcödé 日本語 🚀".into(),
            "x".repeat(300),
            "a/b\\c:d@e".into(),
            "-._leading-and-trailing_.-".into(),
            "UPPER_case.Mixed".into(),
            format!("{}{}", "é".repeat(40), "z"),
        ]
    }

    #[test]
    fn valid_ids_are_kept_unchanged() {
        assert_eq!(label_value(UUID_A).as_deref(), Some(UUID_A));
        assert_eq!(label_value("Agent_1.v2").as_deref(), Some("Agent_1.v2"));
    }

    #[test]
    fn every_odd_id_sanitises_to_a_valid_label_value() {
        for id in odd_ids() {
            let v = label_value(&id).expect("has alphanumerics");
            assert!(is_label_value(&v), "{id:?} -> {v:?}");
        }
    }

    #[test]
    fn ids_that_differ_only_in_replaced_characters_get_distinct_labels() {
        let a = label_value("team a").unwrap();
        let b = label_value("team/a").unwrap();
        assert_ne!(a, b);
        assert_ne!(label_value(&"x".repeat(300)), label_value(&"x".repeat(301)));
    }

    #[test]
    fn symbol_only_and_empty_ids_sanitise_to_nothing() {
        for id in ["", "---", "._.", "日本語", "🚀🚀"] {
            assert_eq!(label_value(id), None, "{id:?}");
        }
    }

    #[test]
    fn agent_id_without_usable_characters_is_agent_id_invalid() {
        let err = RunIds::from_request(&request("日本語", UUID_B)).unwrap_err();
        assert_eq!(err.code(), ErrorCode::AgentIdInvalid);
        assert!(err.to_string().contains("日本語"));
        let err = RunIds::from_request(&request(UUID_A, "!!")).unwrap_err();
        assert_eq!(err, Error::RunId("!!".into()));
    }

    #[test]
    fn job_names_are_rfc1123_short_enough_for_secret_suffixes_and_deterministic() {
        for agent in odd_ids() {
            for run in odd_ids() {
                let name = job_name(&agent, &run);
                assert!(name.len() <= LABEL_VALUE_MAX - SECRET_SUFFIX_ROOM, "{name}");
                assert!(is_dns_label(&name), "{name}");
                assert!(is_dns_label(&format!("{name}-10")), "{name}");
                assert_eq!(name, job_name(&agent, &run));
            }
        }
    }

    #[test]
    fn job_name_has_the_documented_shape() {
        let name = job_name("agent-1", "run-2");
        assert!(name.starts_with("ac-agent-1-run-2-"), "{name}");
        assert_eq!(name.len(), "ac-agent-1-run-2-".len() + JOB_HASH_HEX);
        assert!(job_name("日本", "🚀").starts_with("ac-"));
        assert!(is_dns_label(&job_name("日本", "🚀")));
    }

    #[test]
    fn job_name_differs_per_agent_and_per_run_even_when_slugs_collide() {
        assert_ne!(job_name(UUID_A, UUID_B), job_name(UUID_B, UUID_A));
        assert_ne!(job_name("Agent", "r"), job_name("agent", "r"));
        let long = "y".repeat(200);
        assert_ne!(job_name(&long, "run-1"), job_name(&long, "run-2"));
        // NB: without the NUL separator ("ab","c") and ("a","bc") would hash alike.
        assert_ne!(job_name("ab", "c"), job_name("a", "bc"));
    }

    #[test]
    fn long_uuids_share_the_slug_budget() {
        let name = job_name(UUID_A, UUID_B);
        assert!(name.contains("5c5b3b2b"), "{name}");
        assert!(name.contains("89c168bc"), "{name}");
    }

    #[test]
    fn saved_uuid_session_in_the_same_cwd_is_resumed() {
        let runtime = Runtime {
            session_params: Some(json!({"sessionId": UUID_A, "cwd": "/paperclip/ws/"})),
            ..Runtime::default()
        };
        assert_eq!(
            session_to_resume(&runtime, "/paperclip/ws"),
            Resume {
                session: Some(UUID_A),
                note: None
            }
        );
        let legacy = Runtime {
            session_id: Some(UUID_B.to_uppercase()),
            ..Runtime::default()
        };
        assert_eq!(
            session_to_resume(&legacy, "/x").session,
            Some(UUID_B.to_uppercase().as_str())
        );
        assert_eq!(
            session_to_resume(&Runtime::default(), "/x"),
            Resume {
                session: None,
                note: None
            }
        );
    }

    #[test]
    fn non_uuid_or_other_cwd_sessions_start_fresh_with_a_note() {
        let runtime = Runtime {
            session_id: Some("not-a-uuid".into()),
            ..Runtime::default()
        };
        let r = session_to_resume(&runtime, "/paperclip");
        assert_eq!(r.session, None);
        assert!(r
            .note
            .unwrap()
            .contains("\"not-a-uuid\" is not a valid UUID"));
        let runtime = Runtime {
            session_params: Some(json!({"sessionId": UUID_A, "cwd": "/old"})),
            ..Runtime::default()
        };
        let r = session_to_resume(&runtime, "/paperclip");
        assert_eq!(r.session, None);
        assert!(r
            .note
            .unwrap()
            .contains("was saved for cwd \"/old\" and will not be resumed in \"/paperclip\""));
    }

    #[test]
    fn task_comes_from_task_id_then_issue_id_then_task_key() {
        let mut req = request("a", "r");
        req.runtime = Runtime {
            task_key: Some("key-3".into()),
            ..Runtime::default()
        };
        assert_eq!(task_id(&req), Some("key-3"));
        req.context = json!({"issueId": " issue-2 ", "taskId": "  "});
        assert_eq!(task_id(&req), Some("issue-2"));
        req.context = json!({"issueId": "issue-2", "taskId": "task-1"});
        assert_eq!(task_id(&req), Some("task-1"));
    }

    #[test]
    fn labels_carry_every_present_id_and_omit_absent_ones() {
        let mut req = request(UUID_A, UUID_B);
        let ids = RunIds::from_request(&req).unwrap();
        let labels = ids.labels();
        assert_eq!(labels[LABEL_MANAGED_BY], "paperclip");
        assert_eq!(labels[LABEL_COMPONENT], "agent-job");
        assert_eq!(labels[LABEL_ADAPTER_TYPE], "claude_k8s");
        assert_eq!(labels[LABEL_AGENT_ID], UUID_A);
        assert_eq!(labels[LABEL_RUN_ID], UUID_B);
        assert_eq!(labels[LABEL_COMPANY_ID], "co-1");
        assert!(!labels.contains_key(LABEL_TASK_ID));
        assert!(!labels.contains_key(LABEL_SESSION_ID));

        req.context = json!({"taskId": "t 1"});
        req.runtime.session_params = Some(json!({"sessionId": UUID_A}));
        let labels = RunIds::from_request(&req).unwrap().labels();
        assert!(labels[LABEL_TASK_ID].starts_with("t-1-"));
        assert_eq!(labels[LABEL_SESSION_ID], UUID_A);
        assert!(labels.values().all(|v| is_label_value(v)));
    }

    #[test]
    fn secret_names_and_selector_follow_the_job() {
        let ids = RunIds::from_request(&request("agent", "run")).unwrap();
        assert_eq!(ids.secret_name(0), format!("{}-0", ids.job_name));
        assert_eq!(
            ids.agent_selector(),
            "paperclip.io/agent-id=agent,paperclip.io/adapter-type=claude_k8s"
        );
    }
}
