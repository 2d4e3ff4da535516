//! Control in microservice mode: the api stage publishes each admin change
//! to the compacted control topic (`[kafka.stages] control_topic`, default
//! `allot.control`), and every assign, match and distribute replica reads
//! that topic in full, outside any consumer group, and applies what it has
//! not applied yet.
//!
//! - A rule activation carries the version's TOML, so a replica stores the
//!   version it did not have; each replica switches at `effective_at`.
//! - A rep override (out of office, capacity, active) and an offboarding
//!   carry the rep's whole override, keyed per rep: compaction keeps the
//!   last one, which is all a replica starting from scratch needs.
//! - Offboarding's re-decisions are not made by whoever reads the message
//!   first: each deciding replica turns the open records its store shows on
//!   the rep into `owner_refused` events on the events topic, keyed by record
//!   id, so the replica that owns the record decides it in order with its
//!   other events, and a copy from a replica that no longer owns it is
//!   dropped because the record has moved on.
//!
//! The admin call is answered once the broker acknowledged the message (it
//! is durable then), and audited once, by the api stage. A replica stores
//! the last offset it applied in its own store, with the effects, so a
//! restart does not apply a message twice.

use std::sync::Arc;
use std::time::{Duration, Instant};

use allot_bus::{KafkaConfig, KafkaSink, TopicReader};
use allot_rules::overrides::RepOverride;
use allot_store::{Batch, Store, OVERRIDE};
use serde_json::{json, Value};
use tracing::{info, warn};

use super::{ControlCommand, ControlError, ControlMessage, CONTROL_VERSION};
use crate::stages::messages::{self, headers};
use crate::ServiceError;

/// The schema header of control messages.
pub const CONTROL_SCHEMA: &[u8] = b"control.v1";

/// The api stage's end: publishes admin changes to the control topic.
pub struct ControlTopic {
    sink: KafkaSink,
    topic: String,
    /// The api stage's own store: what it publishes is also recorded here,
    /// so its own views (rules, reps) show the change at once.
    store: Arc<Store>,
}

impl ControlTopic {
    pub fn new(sink: KafkaSink, topic: &str, store: Arc<Store>) -> ControlTopic {
        ControlTopic {
            sink,
            topic: topic.to_string(),
            store,
        }
    }

    /// Publishes `command` and answers once the broker has it.
    pub async fn publish(&self, command: ControlCommand) -> Result<Value, ControlError> {
        let command = self.complete(command)?;
        let message = ControlMessage {
            v: CONTROL_VERSION,
            command,
        };
        let key = message.command.key();
        let body = serde_json::to_vec(&message)
            .map_err(|e| ControlError::Unavailable(format!("control message: {e}")))?;
        let (partition, offset) = self
            .sink
            .send(
                &self.topic,
                key.as_bytes(),
                &body,
                &[(headers::SCHEMA, CONTROL_SCHEMA)],
            )
            .await
            .map_err(|e| ControlError::Unavailable(format!("control topic {}: {e}", self.topic)))?;
        info!(key = %key, partition, offset, "control change published");
        let mut b = self.store.batch();
        record(&self.store, &mut b, &message)
            .and_then(|()| self.store.commit(b).map_err(ServiceError::from))
            .map_err(|e| ControlError::Unavailable(format!("published, not recorded here: {e}")))?;
        let mut reply = summary(&message.command);
        if matches!(message.command, ControlCommand::ActivateRules { .. }) {
            let active = self
                .store
                .active_rule_version(crate::now_ms())
                .ok()
                .flatten()
                .map(|v| v.version_id);
            reply["active_version"] = json!(active);
        }
        reply["published"] = json!({"topic": self.topic, "partition": partition, "offset": offset});
        reply["applied_by"] =
            json!("every assign, match and distribute replica, as it reads the control topic");
        Ok(reply)
    }

    /// What the replicas need that only this store knows: the version's
    /// text, the rep's whole override.
    fn complete(&self, command: ControlCommand) -> Result<ControlCommand, ControlError> {
        let store_err = |e: allot_store::StoreError| ControlError::Unavailable(e.to_string());
        Ok(match command {
            ControlCommand::ActivateRules {
                version_id,
                effective_at,
                by,
                toml: None,
            } => {
                let Some(v) = self.store.rule_version(&version_id).map_err(store_err)? else {
                    return Err(ControlError::Refused(format!(
                        "no rule version {version_id:?}"
                    )));
                };
                ControlCommand::ActivateRules {
                    version_id,
                    effective_at,
                    by,
                    toml: Some(v.toml),
                }
            }
            ControlCommand::Offboard {
                rep,
                by,
                over: None,
            } => {
                let mut over: RepOverride = self
                    .store
                    .admin_get(OVERRIDE, &rep)
                    .map_err(store_err)?
                    .unwrap_or_default();
                over.active = Some(false);
                ControlCommand::Offboard {
                    rep,
                    by,
                    over: Some(over),
                }
            }
            c @ (ControlCommand::Redecide { .. } | ControlCommand::Sync { .. }) => {
                return Err(ControlError::Unavailable(format!(
                    "{} is not carried by the control topic",
                    c.key()
                )))
            }
            c => c,
        })
    }
}

/// The answer to an admin call, before where it was published.
fn summary(command: &ControlCommand) -> Value {
    match command {
        ControlCommand::ActivateRules {
            version_id,
            effective_at,
            ..
        } => json!({"version_id": version_id, "effective_at": effective_at}),
        ControlCommand::SetRepOverride { rep, over, .. } => json!({"rep": rep, "override": over}),
        ControlCommand::Offboard { rep, over, .. } => json!({
            "rep": rep, "override": over, "moved": [],
            "re_decided_by": "each deciding replica, for the rep's open records it holds",
        }),
        ControlCommand::Redecide { .. } | ControlCommand::Sync { .. } => json!({}),
    }
}

/// Records what a control message changes in `store` (through `b`): the
/// rule version and its activation, the rep's override. What it sets is
/// whole, so recording it twice changes nothing.
pub fn record(store: &Store, b: &mut Batch, message: &ControlMessage) -> Result<(), ServiceError> {
    match &message.command {
        ControlCommand::ActivateRules {
            version_id,
            effective_at,
            by,
            toml,
        } => {
            let toml = match (toml, store.rule_version(version_id)?) {
                (Some(t), Some(v)) if v.toml != *t => {
                    warn!(version = %version_id, "control: rule version is stored here with other text; activation skipped");
                    return Ok(());
                }
                (Some(t), _) => t.clone(),
                (None, Some(v)) => v.toml,
                (None, None) => {
                    warn!(version = %version_id, "control: activation of a version unknown here, without its text; skipped");
                    return Ok(());
                }
            };
            b.put_rule_version(version_id, &toml, *effective_at, Some(by));
        }
        ControlCommand::SetRepOverride { rep, over, .. }
        | ControlCommand::Offboard {
            rep,
            over: Some(over),
            ..
        } => {
            let value = match over.is_empty() {
                true => Value::Null,
                false => json!(over),
            };
            b.admin_put(OVERRIDE, rep, value);
        }
        ControlCommand::Offboard { over: None, .. }
        | ControlCommand::Redecide { .. }
        | ControlCommand::Sync { .. } => {}
    }
    Ok(())
}

impl messages::Versioned for ControlMessage {
    const SCHEMA: &'static str = "control.v1";
}

/// One message read from the control topic.
#[derive(Debug, Clone)]
pub struct Control {
    pub partition: i32,
    pub offset: i64,
    pub message: ControlMessage,
}

/// A replica's end: reads the control topic in full, from its start.
pub struct ControlFeed {
    reader: TopicReader,
    topic: String,
}

impl ControlFeed {
    pub async fn open(config: &KafkaConfig, topic: &str) -> Result<ControlFeed, ServiceError> {
        let reader = TopicReader::table(config, topic)
            .await
            .map_err(crate::stages::bus("control"))?;
        Ok(ControlFeed {
            reader,
            topic: topic.to_string(),
        })
    }

    fn position_name(&self, partition: i32) -> String {
        format!("control:{}:{partition}", self.topic)
    }

    /// Marks `c` applied in `b` (commit it with the message's effects).
    pub fn applied(&self, b: &mut Batch, c: &Control) {
        b.set_position(&self.position_name(c.partition), c.offset + 1);
    }

    /// The messages that arrived and that `store` has not applied yet, in order.
    pub async fn poll(&mut self, store: &Store) -> Result<Vec<Control>, ServiceError> {
        let mut out = Vec::new();
        while let Some(d) = self
            .reader
            .poll(Duration::from_millis(1))
            .await
            .map_err(crate::stages::bus("control"))?
        {
            let done = store
                .position(&self.position_name(d.partition))?
                .and_then(|p| p.offset())
                .unwrap_or(0);
            if d.offset < done {
                continue;
            }
            match messages::read::<ControlMessage>(&d) {
                Ok(message) => out.push(Control {
                    partition: d.partition,
                    offset: d.offset,
                    message,
                }),
                Err((kind, why)) => {
                    warn!(kind, reason = %why, offset = d.offset, "control message skipped")
                }
            }
            if out.len() >= 1_000 {
                break;
            }
        }
        Ok(out)
    }

    /// Everything up to the topic's end (before a stage's first chunk), or
    /// what came within a minute.
    pub async fn catch_up(&mut self, store: &Store) -> Result<Vec<Control>, ServiceError> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut out = Vec::new();
        loop {
            out.extend(self.poll(store).await?);
            if self
                .reader
                .caught_up()
                .await
                .map_err(crate::stages::bus("control"))?
            {
                return Ok(out);
            }
            if Instant::now() > deadline {
                warn!(topic = %self.topic, "control topic not read to its end within 60 s; starting anyway, it keeps being read");
                return Ok(out);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
