//! One trace per event across the stages: each stage opens a span per event
//! whose parent is the trace context the message carried (`traceparent`
//! header), and passes its own span's context on in the messages it sends.
//! With OpenTelemetry export off (the default) the spans are plain tracing
//! spans and the incoming context, or one derived from the event id, is
//! passed on unchanged, so the trace id of an event is the same at every hop.

use std::collections::HashMap;

use allot_bus::Delivery;
use opentelemetry::global;
use opentelemetry::trace::TraceContextExt;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::stages::messages::{self, headers};

/// A span for `event_id` in `stage`, child of the context `incoming`
/// carried, and the `traceparent` to send downstream.
pub fn event_span(
    stage: &'static str,
    incoming: Option<&Delivery>,
    event_id: &str,
    record_id: &str,
) -> (Span, String) {
    let parent = messages::traceparent(incoming, event_id);
    let span = tracing::info_span!("event", otel.name = stage, stage, event_id, record_id);
    let carrier: HashMap<String, String> =
        HashMap::from([(headers::TRACEPARENT.to_string(), parent.clone())]);
    let cx = global::get_text_map_propagator(|p| p.extract(&carrier));
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
    let mut out: HashMap<String, String> = HashMap::new();
    let own = span.context();
    if own.span().span_context().is_valid() {
        global::get_text_map_propagator(|p| p.inject_context(&own, &mut out));
    }
    let next = out.remove(headers::TRACEPARENT).unwrap_or(parent);
    (span, next)
}

/// A span `assign` per decision staged: in the event's trace (the one
/// `allot serve` gives it) when the decision changed an owner, else in the
/// current span.
pub(crate) fn decision_spans(staged: &crate::pipeline::Staged) {
    for (i, d) in staged.decisions.iter().enumerate() {
        let change = staged
            .change_of
            .get(i)
            .copied()
            .flatten()
            .and_then(|c| staged.changes.get(c));
        match change {
            Some(c) => drop(event_span("assign", None, &c.event_id, &d.record_id)),
            None => drop(tracing::info_span!(
                "event",
                otel.name = "assign",
                stage = "assign",
                record_id = %d.record_id
            )),
        }
    }
}
