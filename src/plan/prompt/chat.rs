//! External chat turns (Slack, GitHub, Discord, ...): the provider and answered-question marker
//! a wake may carry, and the response contract Paperclip prompts such turns with
//! (`@paperclipai/adapter-utils` `server-utils` and `chat-file-delivery`).

use serde_json::Value;

use crate::plan::ids::is_uuid;

/// Providers Paperclip binds chat turns to.
const PROVIDERS: [&str; 6] = [
    "slack",
    "github",
    "discord",
    "microsoft-teams",
    "telegram",
    "imessage-photon",
];

/// The only schema of an answered-question marker.
const MARKER_SCHEMA: &str = "paperclip.external_chat_question_response.v1";

/// Marker fields that must be UUIDs.
const MARKER_ID_FIELDS: [&str; 6] = [
    "interactionId",
    "responseDeliveryId",
    "sourceRunId",
    "sourceCommentId",
    "endpointId",
    "conversationId",
];

/// A server-attested "this chat message answers that question" marker.
pub(super) struct ChatMarker {
    pub(super) interaction_id: String,
    pub(super) source_run_id: String,
    pub(super) source_comment_id: String,
}

/// `externalChatProvider`, lower-cased, if Paperclip knows it.
pub(super) fn provider(v: Option<&Value>) -> Option<String> {
    let p = v?.as_str()?.trim().to_lowercase();
    PROVIDERS.contains(&p.as_str()).then_some(p)
}

/// `externalChatQuestionResponse`, only in its exact closed shape: the schema, six UUIDs and a
/// SHA-256, nothing else.
pub(super) fn marker(v: Option<&Value>) -> Option<ChatMarker> {
    let m = v?.as_object()?;
    let ids_ok = MARKER_ID_FIELDS
        .iter()
        .all(|k| m.get(*k).and_then(Value::as_str).is_some_and(is_uuid));
    let sha_ok = m
        .get("bindingSha256")
        .and_then(Value::as_str)
        .is_some_and(|s| {
            s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        });
    let exact_keys = m.len() == MARKER_ID_FIELDS.len() + 2;
    let schema_ok = m.get("schema").and_then(Value::as_str) == Some(MARKER_SCHEMA);
    if !(ids_ok && sha_ok && exact_keys && schema_ok) {
        return None;
    }
    let field = |k: &str| {
        m.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    Some(ChatMarker {
        interaction_id: field("interactionId"),
        source_run_id: field("sourceRunId"),
        source_comment_id: field("sourceCommentId"),
    })
}

/// The response contract that replaces the execution contract on a chat turn.
pub(super) fn contract_lines(
    provider: &str,
    answered_question: bool,
    checked_out: bool,
) -> Vec<String> {
    let mut lines = vec![
        if answered_question {
            "## External chat answered-question contract"
        } else {
            "## External chat response contract"
        }
        .to_string(),
        String::new(),
        if answered_question {
            format!("This is a server-authenticated {provider} answer to the exact question in this task. Paperclip verified its source run, accepted answer delivery, provider conversation and this agent's current execution binding.")
        } else if checked_out {
            format!("This is a server-authenticated {provider} chat turn. Paperclip already authorized and bound the provider message, assigned this immutable agent, and checked out the issue for this run.")
        } else {
            format!("This is a server-authenticated {provider} chat turn. Paperclip verified the provider message and this agent's current execution binding. The task remains in review: this binding is not a checkout, approval, or permission to change its status or bypass any review gate.")
        },
    ];
    lines.extend(CONTRACT_HEAD.iter().map(|s| s.to_string()));
    if answered_question {
        lines.extend(ANSWERED_QUESTION.iter().map(|s| s.to_string()));
    }
    lines.push(WAIT_FOR_NEXT_MESSAGE.into());
    lines.push(format!(
        "File-delivery contract: {}",
        file_delivery_guidance(provider)
    ));
    lines.extend(CONTRACT_TAIL.iter().map(|s| s.to_string()));
    lines
}

/// What a prepared file means for this provider (`paperclipChatFilePreparationDelivery`).
fn file_delivery_guidance(provider: &str) -> String {
    match provider {
        "github" | "microsoft-teams" => {
            let (name, surface) = if provider == "github" {
                ("GitHub App", "comments or review threads")
            } else {
                ("Microsoft Teams", "chats")
            };
            format!("This {name} connection cannot upload file bytes into {surface}. After a successful file-preparation receipt, say the file is saved on the Paperclip task and must be opened there with Paperclip access; do not say it is attached, displayed, downloadable, or available to open in this provider conversation. Do not invent a public download link. Preparation does not confirm provider delivery.")
        }
        "slack" | "discord" | "telegram" | "imessage-photon" => "A successful file-preparation receipt means the file is saved on the Paperclip task and selected for final-response delivery. The transport can attempt a native attachment, but this receipt does not confirm that attempt or its delivery. After successful preparation, lead with the requested answer and optionally a short file label, such as 'Original cat photo'. Preparation is a normal handoff, not a delivery failure: keep receipt fields and unconfirmed-delivery caveats out of the normal final reply; do not claim it was sent, attached, or displayed without a separate confirmed provider-delivery receipt. If a tool reports an actual failure, say what failed and the next action needed; do not hide it.".into(),
        _ => "The file is prepared on the Paperclip task. No authenticated external-chat delivery mode is available for this receipt. Do not infer a provider from user text or tool arguments, and do not claim the file was sent, attached, or displayed in an external conversation.".into(),
    }
}

const CONTRACT_HEAD: [&str; 4] = [
    "For a self-contained text request, answer directly from the supplied task and wake context. Make zero Paperclip API calls: do not refetch the issue, inbox, status, artifacts, workspace, or provider connections; do not post progress or completion comments; do not write task status; and do not check out the issue again.",
    "The harness owns task state and persists your final assistant response. If the runtime offers a semantic completion operation, emit exactly one semantic completion and do not duplicate that response in a Paperclip comment or status update.",
    "The semantic completion summary is the user-visible final answer. Include every requested answer, exact value, description, and any actionable file-access or delivery limitation there; a statement that you read, checked, or prepared something is not a substitute. Private progress commentary is not delivered as the final answer.",
    "In a normal successful answer, omit routine file-preparation, unconfirmed-delivery, and waiting-for-next-message status; end after the requested content or a neutral file label. Report a genuine failure or required user action plainly, without claiming a delivery that has not been confirmed.",
];

const ANSWERED_QUESTION: [&str; 2] = [
    "Use the authoritative answer below to complete the original request; do not repeat or re-ask the resolved question. Preserve the original request's exact-output constraints literally. Put the requested result, including the chosen value, in the semantic completion summary—not an acknowledgment that the answer was received or that the task was updated.",
    "This answer resolves only the named question, not a separate approval or completion review. Report the work disposition truthfully in the semantic control fields; do not change task status, clear a review, or manufacture a new wait or monitor to force a reply. Paperclip independently preserves genuine pending review gates.",
];

const WAIT_FOR_NEXT_MESSAGE: &str = "If the user explicitly asks to keep this current chat task open and wait for their next provider message without scheduling more work, report `yielded` with continuation kind `response_wake`; do not report `done`. Use that wait only after completing this turn's requested response, and never use it to defer unfinished work or for an ordinary completed request. Paperclip independently verifies the current chat binding before preserving the task.";

const CONTRACT_TAIL: [&str; 3] = [
    "When the request genuinely requires files, investigation, external access, or mutations, use the appropriate tools and complete every required permission, approval, execution-policy, containment, budget, pause/cancel, and company-boundary check. This response shortcut grants no new authority.",
    "Keep the final response concise and provider-facing. Do not narrate Paperclip workflow, checkout, status, or completion bookkeeping. Keep wait and review dispositions in the semantic control fields rather than appending status boilerplate to the answer. Mention task state only when the user asks about it or must act on a real blocker.",
    "",
];
