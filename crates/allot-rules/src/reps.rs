//! Reps: compiling their file entries, and whether one is eligible now.

use allot_core::{EngineState, Millis};
use chrono::{Datelike, TimeZone, Timelike};
use chrono_tz::Tz;

use crate::compile::Ctx;
use crate::file::RepSpec;
use crate::model::{Rep, Territory, WorkingHours};

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

pub(crate) fn compile_rep(ctx: &mut Ctx, r: &RepSpec, at: usize) -> Option<Rep> {
    let mut ok = true;
    let mut err = |ctx: &mut Ctx, msg: String| {
        ok = false;
        ctx.error(at, format!("rep \"{}\": {msg}", r.id));
    };
    let tz: Tz = match r.timezone.as_deref() {
        None => Tz::UTC,
        Some(name) => name.parse().unwrap_or_else(|_| {
            err(
                ctx,
                format!("unknown time zone \"{name}\" (an IANA name such as Europe/Berlin)"),
            );
            Tz::UTC
        }),
    };
    if r.weight == 0 {
        err(ctx, "weight must be at least 1".into());
    }
    let hours = r.working_hours.as_ref().and_then(|h| {
        let mut days = [false; 7];
        for d in &h.days {
            match DAYS
                .iter()
                .position(|x| d.trim().to_lowercase().starts_with(x))
            {
                Some(i) => days[i] = true,
                None => err(
                    ctx,
                    format!("unknown day \"{d}\" in working_hours (mon … sun)"),
                ),
            }
        }
        let start = hhmm(&h.start);
        let end = hhmm(&h.end);
        if start.is_none() {
            err(
                ctx,
                format!("working_hours start \"{}\" is not HH:MM", h.start),
            );
        }
        if end.is_none() {
            err(ctx, format!("working_hours end \"{}\" is not HH:MM", h.end));
        }
        Some(WorkingHours {
            days,
            start_min: start?,
            end_min: end?,
        })
    });
    let mut out_of_office = Vec::new();
    for w in &r.out_of_office {
        match (rfc3339(&w.from), rfc3339(&w.until)) {
            (Some(a), Some(b)) if a < b => out_of_office.push((a, b)),
            (Some(_), Some(_)) => err(
                ctx,
                format!(
                    "out_of_office from {} is not before until {}",
                    w.from, w.until
                ),
            ),
            _ => err(
                ctx,
                format!(
                    "out_of_office times \"{}\" / \"{}\" must be RFC 3339 (2026-12-24T00:00:00Z)",
                    w.from, w.until
                ),
            ),
        }
    }
    ok.then(|| Rep {
        id: r.id.clone(),
        name: r.name.clone(),
        email: r.email.clone(),
        active: r.active,
        weight: r.weight,
        max_open: r.max_open,
        max_per_day: r.max_per_day,
        tz,
        hours,
        out_of_office,
        skills: r.skills.iter().cloned().collect(),
    })
}

fn hhmm(s: &str) -> Option<u32> {
    let (h, m) = s.trim().split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 24 && m < 60 && h * 60 + m <= 24 * 60).then_some(h * 60 + m)
}

/// Epoch milliseconds of an RFC 3339 time.
pub fn rfc3339(s: &str) -> Option<Millis> {
    chrono::DateTime::parse_from_rfc3339(s.trim())
        .ok()
        .map(|t| t.timestamp_millis())
}

fn local(tz: Tz, now: Millis) -> Option<chrono::DateTime<Tz>> {
    tz.timestamp_millis_opt(now).single()
}

impl Rep {
    /// Day number (days since 0001-01-01) in the rep's time zone: the key of
    /// daily caps, so "per day" means the rep's day.
    pub fn day(&self, now: Millis) -> i64 {
        local(self.tz, now).map_or(now.div_euclid(allot_core::DAY_MS), |t| {
            i64::from(t.num_days_from_ce())
        })
    }

    /// The out-of-office window containing `now`, if any.
    pub fn away_until(&self, now: Millis) -> Option<Millis> {
        self.out_of_office
            .iter()
            .find(|(a, b)| *a <= now && now < *b)
            .map(|w| w.1)
    }

    pub fn in_working_hours(&self, now: Millis) -> bool {
        let (Some(h), Some(t)) = (&self.hours, local(self.tz, now)) else {
            return true;
        };
        let minute = t.hour() * 60 + t.minute();
        let day = t.weekday().num_days_from_monday() as usize;
        if h.start_min <= h.end_min {
            h.days[day] && h.start_min <= minute && minute < h.end_min
        } else if minute >= h.start_min {
            h.days[day]
        } else {
            // After midnight of a shift that started the day before.
            h.days[(day + 6) % 7] && minute < h.end_min
        }
    }

    /// Whether the rep can be given a record now, and why not.
    pub fn ineligible(
        &self,
        territory: Option<&Territory>,
        state: &EngineState,
        now: Millis,
    ) -> Option<String> {
        if !self.active {
            return Some("inactive".into());
        }
        if let Some(until) = self.away_until(now) {
            return Some(format!("out of office until {}", iso(until)));
        }
        if let Some(t) = territory {
            if t.require_working_hours && !self.in_working_hours(now) {
                return Some(format!("outside working hours ({})", self.tz.name()));
            }
            if let Some(missing) = t.required_skills.iter().find(|s| !self.skills.contains(*s)) {
                return Some(format!("lacks skill \"{missing}\""));
            }
        }
        if let Some(max) = self.max_open {
            let open = state.open_count(&self.id);
            if open >= i64::from(max) {
                return Some(format!("at capacity ({open} open, max {max})"));
            }
        }
        if let Some(max) = self.max_per_day {
            let today = state.daily_count(&self.id, self.day(now));
            if today >= max {
                return Some(format!("daily cap reached ({today} today, max {max})"));
            }
        }
        None
    }
}

/// RFC 3339 text of an epoch-ms time, for explanations.
pub fn iso(t: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(t).map_or_else(
        || t.to_string(),
        |d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}
