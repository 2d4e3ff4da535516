//! Commands to the pipeline owner and the channel they travel on.

use allot_core::Millis;
use allot_rules::overrides::RepOverride;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::CONTROL_VERSION;

/// One change the pipeline owner applies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum ControlCommand {
    /// Activate a stored version from `effective_at` on (realigning then).
    ActivateRules {
        version_id: String,
        effective_at: Millis,
        by: String,
        /// The version's text, carried on the control topic so that every
        /// replica can store it (none in one process: the store has it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        toml: Option<String>,
    },
    /// Replace a rep's override (an empty one removes it).
    SetRepOverride {
        rep: String,
        #[serde(rename = "override")]
        over: RepOverride,
        by: String,
    },
    /// Deactivate a rep and re-decide their open records now.
    Offboard {
        rep: String,
        by: String,
        /// The rep's whole override after offboarding, carried on the
        /// control topic (none in one process: the owner works it out).
        #[serde(default, rename = "override", skip_serializing_if = "Option::is_none")]
        over: Option<RepOverride>,
    },
    /// Re-decide these records now (a failed write retried): see
    /// [`super::redecide_records`].
    Redecide {
        records: Vec<RedecideTarget>,
        by: String,
    },
    /// Read the CRM's book into the store (see [`crate::backfill`]).
    Sync {
        plan: crate::backfill::SyncPlan,
        by: String,
    },
}

impl ControlCommand {
    /// The key on the compacted control topic: the last message per key is
    /// the one a replica starting from scratch needs. A rule version's
    /// activation is kept per version; a rep's override, offboarding
    /// included, per rep.
    pub fn key(&self) -> String {
        match self {
            ControlCommand::ActivateRules { version_id, .. } => format!("rules:{version_id}"),
            ControlCommand::SetRepOverride { rep, .. } | ControlCommand::Offboard { rep, .. } => {
                format!("rep:{rep}")
            }
            ControlCommand::Redecide { .. } => "redecide".into(),
            ControlCommand::Sync { .. } => "sync".into(),
        }
    }
}

/// One record to decide again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedecideTarget {
    pub object: allot_core::ObjectKind,
    pub record_id: String,
    /// The failed write this retries (its id); removed in the same batch as
    /// the re-decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_write: Option<String>,
}

/// The versioned envelope of a command, as it would travel on a topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ControlMessage {
    pub v: u8,
    #[serde(flatten)]
    pub command: ControlCommand,
}

/// What the owner answers: a JSON summary, or why it refused.
pub type Reply = Result<Value, String>;

/// A command in flight, with where to answer (when someone waits).
pub struct Envelope {
    pub message: ControlMessage,
    pub reply: Option<oneshot::Sender<Reply>>,
}

/// Where commands go.
#[derive(Clone)]
pub enum ControlHandle {
    /// To the owner in this process (`allot run`).
    Embedded(mpsc::Sender<Envelope>),
    /// To every deciding replica, through the control topic (`allot serve api`).
    Topic(std::sync::Arc<super::topic::ControlTopic>),
    /// No pipeline owner reachable from here; the text says why.
    Unavailable(String),
}

impl Default for ControlHandle {
    fn default() -> Self {
        ControlHandle::Unavailable("no pipeline owner in this process".into())
    }
}

/// The owner's end of an embedded channel.
pub struct ControlInbox(pub(crate) mpsc::Receiver<Envelope>);

impl ControlHandle {
    /// An embedded channel.
    pub fn channel() -> (ControlHandle, ControlInbox) {
        let (tx, rx) = mpsc::channel(64);
        (ControlHandle::Embedded(tx), ControlInbox(rx))
    }

    /// Sends `command` and waits for the owner's answer.
    pub async fn request(&self, command: ControlCommand) -> Result<Value, ControlError> {
        match self {
            ControlHandle::Unavailable(why) => Err(ControlError::Unavailable(why.clone())),
            ControlHandle::Topic(t) => t.publish(command).await,
            ControlHandle::Embedded(tx) => {
                let (reply, rx) = oneshot::channel();
                let message = ControlMessage {
                    v: CONTROL_VERSION,
                    command,
                };
                tx.send(Envelope {
                    message,
                    reply: Some(reply),
                })
                .await
                .map_err(|_| ControlError::Unavailable("the pipeline owner stopped".into()))?;
                match rx.await {
                    Ok(Ok(v)) => Ok(v),
                    Ok(Err(e)) => Err(ControlError::Refused(e)),
                    Err(_) => Err(ControlError::Unavailable(
                        "the pipeline owner stopped before answering".into(),
                    )),
                }
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("control unavailable: {0}")]
    Unavailable(String),
    #[error("{0}")]
    Refused(String),
}
