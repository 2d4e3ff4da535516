//! Following the control topic from a stage (see [`crate::control`]'s
//! `topic` module): assign and match apply each message through their
//! [`Controller`], distribute keeps its rules in force with [`RulesInForce`].

use std::collections::BTreeMap;
use std::sync::Arc;

use allot_bus::KafkaSink;
use allot_core::{ChangeEvent, Millis};
use allot_rules::overrides::{with_overrides, RepOverride};
use allot_rules::RuleSet;
use allot_store::{Store, OVERRIDE};
use tracing::info;

use super::messages::{self, headers};
use super::{bus, matching::encode};
use crate::control::{record, Control, ControlFeed, Controller};
use crate::pipeline::Pipeline;
use crate::ServiceError;

/// A pipeline owner's follower: the feed, the controller, where the
/// re-decisions an offboarding asks for are sent.
pub struct Follower {
    feed: ControlFeed,
    controller: Controller,
    events_topic: String,
}

impl Follower {
    /// Applies everything on the control topic not applied yet, before the
    /// stage's first chunk.
    pub async fn start(
        p: &mut Pipeline,
        mut feed: ControlFeed,
        events_topic: &str,
        sink: &KafkaSink,
    ) -> Result<Follower, ServiceError> {
        let mut controller = Controller::follower(p.rules().clone());
        controller.start(p, crate::now_ms())?;
        let backlog = feed.catch_up(p.store()).await?;
        let mut f = Follower {
            feed,
            controller,
            events_topic: events_topic.to_string(),
        };
        f.apply(p, sink, backlog).await?;
        Ok(f)
    }

    /// Applies what arrived, and switches to a version scheduled for now.
    pub async fn step(&mut self, p: &mut Pipeline, sink: &KafkaSink) -> Result<(), ServiceError> {
        let arrived = self.feed.poll(p.store()).await?;
        self.apply(p, sink, arrived).await?;
        self.controller.maybe_sync(p, crate::now_ms())?;
        Ok(())
    }

    async fn apply(
        &mut self,
        p: &mut Pipeline,
        sink: &KafkaSink,
        arrived: Vec<Control>,
    ) -> Result<(), ServiceError> {
        for c in arrived {
            let now = crate::now_ms();
            let id = format!("{}@{}", c.partition, c.offset);
            let events = self.controller.follow(p, &c.message, &id, now)?;
            send_events(sink, &self.events_topic, &events, &id, now).await?;
            let mut b = p.store().batch();
            self.feed.applied(&mut b, &c);
            p.store().commit(b)?;
        }
        Ok(())
    }
}

/// Sends events allot made itself to the events topic, keyed by record id,
/// and waits until the brokers have them all.
pub async fn send_events(
    sink: &KafkaSink,
    topic: &str,
    events: &[ChangeEvent],
    source: &str,
    now: Millis,
) -> Result<(), ServiceError> {
    let mut out = Vec::with_capacity(events.len());
    for event in events {
        let msg = messages::EventMessage {
            v: messages::VERSION,
            event: event.clone(),
            source: format!("control:{source}"),
            received_at: now,
        };
        out.push((
            event.record_id.clone().unwrap_or_default(),
            event.event_id.clone(),
            encode(&msg)?,
        ));
    }
    futures::future::try_join_all(out.iter().map(|(key, event_id, body)| async move {
        sink.send(
            topic,
            key.as_bytes(),
            body,
            &[
                (headers::EVENT_ID, event_id.as_bytes()),
                (headers::SCHEMA, b"event.v1".as_slice()),
            ],
        )
        .await
    }))
    .await
    .map_err(bus("control"))?;
    Ok(())
}

/// The rules a stage without a pipeline decides with (distribute): the
/// version in force in its store, with the rep overrides laid over it,
/// kept up to date from the control topic.
pub struct RulesInForce {
    feed: ControlFeed,
    store: Arc<Store>,
    base: Arc<RuleSet>,
    overrides: BTreeMap<String, RepOverride>,
    next_check: Millis,
}

impl RulesInForce {
    /// Starts from `base` (the version in force at start) and applies
    /// everything on the control topic.
    pub async fn start(
        mut feed: ControlFeed,
        store: Arc<Store>,
        base: Arc<RuleSet>,
    ) -> Result<(RulesInForce, Arc<RuleSet>), ServiceError> {
        let backlog = feed.catch_up(&store).await?;
        let mut r = RulesInForce {
            feed,
            store,
            base,
            overrides: BTreeMap::new(),
            next_check: Millis::MIN,
        };
        r.record(backlog)?;
        let rules = r.current(crate::now_ms())?;
        Ok((r, rules))
    }

    /// The rules when they changed since the last call.
    pub async fn step(&mut self) -> Result<Option<Arc<RuleSet>>, ServiceError> {
        let arrived = self.feed.poll(&self.store).await?;
        let now = crate::now_ms();
        if arrived.is_empty() && now < self.next_check {
            return Ok(None);
        }
        let changed = !arrived.is_empty();
        self.record(arrived)?;
        if !changed {
            self.next_check = now + 1000;
            let switched = self
                .store
                .active_rule_version(now)?
                .is_some_and(|a| a.version_id != self.base.version);
            if !switched {
                return Ok(None);
            }
        }
        self.current(now).map(Some)
    }

    fn record(&mut self, arrived: Vec<Control>) -> Result<(), ServiceError> {
        for c in arrived {
            let mut b = self.store.batch();
            record(&self.store, &mut b, &c.message)?;
            self.feed.applied(&mut b, &c);
            self.store.commit(b)?;
        }
        Ok(())
    }

    /// The version in force now with the overrides over it.
    fn current(&mut self, now: Millis) -> Result<Arc<RuleSet>, ServiceError> {
        if let Some(active) = self.store.active_rule_version(now)? {
            if active.version_id != self.base.version {
                let rules = RuleSet::from_toml(&active.toml, &active.version_id).map_err(|e| {
                    ServiceError::Invalid {
                        what: format!("rule version {}", active.version_id),
                        detail: e.to_string(),
                    }
                })?;
                info!(to = %active.version_id, from = %self.base.version, "rules switched (control topic)");
                self.base = Arc::new(rules);
            }
        }
        self.overrides = self
            .store
            .admin_all::<RepOverride>(OVERRIDE)?
            .into_iter()
            .collect();
        Ok(Arc::new(with_overrides(&self.base, &self.overrides)))
    }
}
