//! Rules file text → validated [`RuleSet`], reporting every problem at once.

use std::collections::{BTreeSet, HashMap, HashSet};

use allot_core::{ObjectKind, DAY_MS};
use toml::Spanned;

use crate::criteria::{Criterion, FieldId};
use crate::file::{CriterionSpec, OwnerSpec, RulesFile, TerritorySpec};
use crate::model::{
    Diagnostic, Method, NamedAccount, Owner, RuleSet, RulesError, Step, Team, Territory,
};
use crate::normalize::{Norm, FREE_MAIL};
use crate::reps::compile_rep;
use crate::{index, overlap};

/// Collects diagnostics and turns byte offsets into line and column.
pub(crate) struct Ctx<'a> {
    text: &'a str,
    pub diags: Vec<Diagnostic>,
    fields: Vec<String>,
    field_ix: HashMap<String, FieldId>,
}

impl Ctx<'_> {
    pub fn at(&self, offset: usize) -> (usize, usize) {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, col)
    }

    pub fn error(&mut self, offset: usize, message: impl Into<String>) {
        let at = Some(self.at(offset));
        self.diags.push(Diagnostic {
            warning: false,
            at,
            message: message.into(),
        });
    }

    fn field(&mut self, name: &str) -> FieldId {
        if let Some(&id) = self.field_ix.get(name) {
            return id;
        }
        self.fields.push(name.to_string());
        self.field_ix
            .insert(name.to_string(), self.fields.len() - 1);
        self.fields.len() - 1
    }
}

impl RuleSet {
    /// Parses and validates a rules file. `origin` names it in diagnostics
    /// (usually the path).
    pub fn from_toml(text: &str, origin: &str) -> Result<RuleSet, RulesError> {
        let fail = |diagnostics| RulesError {
            origin: origin.to_string(),
            diagnostics,
        };
        let file: RulesFile = match toml::from_str(text) {
            Ok(f) => f,
            Err(e) => {
                let ctx = Ctx {
                    text,
                    diags: vec![],
                    fields: vec![],
                    field_ix: HashMap::new(),
                };
                let at = e.span().map(|s| ctx.at(s.start));
                let message = e.message().trim().to_string();
                return Err(fail(vec![Diagnostic {
                    warning: false,
                    at,
                    message,
                }]));
            }
        };
        let mut ctx = Ctx {
            text,
            diags: vec![],
            fields: vec![],
            field_ix: HashMap::new(),
        };
        let rules = build(&mut ctx, file, text);
        let (errors, warnings): (Vec<_>, Vec<_>) = ctx.diags.into_iter().partition(|d| !d.warning);
        match rules {
            Some(mut r) if errors.is_empty() => {
                r.warnings.extend(warnings);
                Ok(r)
            }
            _ => Err(fail(errors)),
        }
    }
}

fn build(ctx: &mut Ctx, file: RulesFile, text: &str) -> Option<RuleSet> {
    let mut rep_ix = HashMap::new();
    let mut reps = Vec::new();
    for spec in &file.reps {
        let start = spec.span().start;
        if rep_ix.contains_key(&spec.get_ref().id) {
            ctx.error(start, format!("duplicate rep id \"{}\"", spec.get_ref().id));
            continue;
        }
        if let Some(rep) = compile_rep(ctx, spec.get_ref(), start) {
            rep_ix.insert(rep.id.clone(), reps.len());
            reps.push(rep);
        }
    }

    let mut team_ix = HashMap::new();
    let mut teams = Vec::new();
    for spec in &file.teams {
        let (t, start) = (spec.get_ref(), spec.span().start);
        if team_ix.contains_key(&t.id) {
            ctx.error(start, format!("duplicate team id \"{}\"", t.id));
            continue;
        }
        let Some(method) = Method::parse(&t.method) else {
            ctx.error(
                start,
                format!(
                    "team \"{}\": unknown method \"{}\" (round_robin, weighted, least_loaded)",
                    t.id, t.method
                ),
            );
            continue;
        };
        if t.members.is_empty() {
            ctx.error(start, format!("team \"{}\" has no members", t.id));
        }
        let mut members = Vec::new();
        for m in &t.members {
            match rep_ix.get(m) {
                Some(&i) if members.contains(&i) => ctx.error(
                    start,
                    format!("team \"{}\": rep \"{m}\" listed twice", t.id),
                ),
                Some(&i) => members.push(i),
                None => ctx.error(start, format!("team \"{}\": undefined rep \"{m}\"", t.id)),
            }
        }
        team_ix.insert(t.id.clone(), teams.len());
        teams.push(Team {
            id: t.id.clone(),
            name: t.name.clone(),
            members,
            method,
        });
    }

    let owners = OwnerResolver {
        rep_ix: &rep_ix,
        team_ix: &team_ix,
        teams: &teams,
    };
    let fallback = file
        .fallback
        .as_ref()
        .and_then(|f| owners.resolve(ctx, f.get_ref(), f.span().start, "global fallback"));
    let order = engagement_order(ctx, &file);
    let existing_owner_window = file
        .engagement
        .existing_owner_days
        .map(|d| i64::from(d) * DAY_MS);
    let mut free_mail: HashSet<String> = FREE_MAIL.iter().map(|s| s.to_string()).collect();
    free_mail.extend(
        file.engagement
            .free_mail_domains
            .iter()
            .map(|d| d.trim().to_lowercase()),
    );

    let territories = compile_territories(ctx, &file.territories, &owners, fallback.is_some());
    let mut named_accounts = Vec::new();
    for spec in &file.named_accounts {
        let (n, start) = (spec.get_ref(), spec.span().start);
        let id =
            n.id.clone()
                .or(n.name.clone())
                .unwrap_or_else(|| format!("named-account-{}", named_accounts.len() + 1));
        if n.account_ids.is_empty() && n.domains.is_empty() && n.names.is_empty() {
            ctx.error(
                start,
                format!("named account \"{id}\" lists no account_ids, domains or names"),
            );
        }
        let Some(owner) = owners.resolve(ctx, &n.owner, start, &format!("named account \"{id}\""))
        else {
            continue;
        };
        named_accounts.push(NamedAccount {
            id,
            account_ids: n.account_ids.iter().cloned().collect(),
            domains: n.domains.iter().map(|d| d.trim().to_lowercase()).collect(),
            names: n.names.iter().map(|d| d.trim().to_lowercase()).collect(),
            owner,
        });
    }

    let territory_ix: HashMap<String, usize> = territories
        .iter()
        .enumerate()
        .map(|(i, t)| (t.id.clone(), i))
        .collect();
    let index = index::TerritoryIndex::build(&territories);
    let version = file.version.clone().unwrap_or_else(|| content_hash(text));
    let mut rules = RuleSet {
        version,
        reps,
        teams,
        territories,
        named_accounts,
        order,
        existing_owner_window,
        free_mail,
        fallback,
        fields: std::mem::take(&mut ctx.fields),
        warnings: Vec::new(),
        rep_ix,
        team_ix,
        territory_ix,
        index,
        pools: Default::default(),
    };
    rules.pools = crate::pools::Pools::build(&rules);
    let spans: Vec<usize> = file.territories.iter().map(|t| t.span().start).collect();
    for w in overlap::tie_break_overlaps(&rules) {
        let at = spans.get(w.0).map(|&s| ctx.at(s));
        rules.warnings.push(Diagnostic {
            warning: true,
            at,
            message: w.1,
        });
    }
    Some(rules)
}

/// FNV-1a of the text: a stable version label for unlabelled rule files.
fn content_hash(text: &str) -> String {
    let h = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("sha-{h:016x}")
}

fn engagement_order(ctx: &mut Ctx, file: &RulesFile) -> Vec<Step> {
    let Some(order) = &file.engagement.order else {
        return Step::DEFAULT_ORDER.to_vec();
    };
    let mut steps = Vec::new();
    for name in order.get_ref() {
        match Step::parse(name) {
            Some(s) if steps.contains(&s) => {
                ctx.error(order.span().start, format!("engagement step \"{name}\" listed twice"))
            }
            Some(s) => steps.push(s),
            None => ctx.error(
                order.span().start,
                format!("unknown engagement step \"{name}\" (named_account, lead_to_account, existing_owner, most_specific, priority, tie_break)"),
            ),
        }
    }
    steps
}

pub(crate) struct OwnerResolver<'a> {
    rep_ix: &'a HashMap<String, usize>,
    team_ix: &'a HashMap<String, usize>,
    teams: &'a [Team],
}

impl OwnerResolver<'_> {
    fn resolve(&self, ctx: &mut Ctx, spec: &OwnerSpec, at: usize, what: &str) -> Option<Owner> {
        match (&spec.rep, &spec.team) {
            (Some(rep), None) => {
                if spec.method.is_some() {
                    ctx.error(
                        at,
                        format!("{what}: `method` applies to a team owner, not a rep"),
                    );
                }
                if !self.rep_ix.contains_key(rep) {
                    ctx.error(at, format!("{what}: undefined rep \"{rep}\""));
                    return None;
                }
                Some(Owner::Rep(rep.clone()))
            }
            (None, Some(team)) => {
                let Some(&ix) = self.team_ix.get(team) else {
                    ctx.error(at, format!("{what}: undefined team \"{team}\""));
                    return None;
                };
                let method = match &spec.method {
                    None => self.teams[ix].method,
                    Some(m) => match Method::parse(m) {
                        Some(m) => m,
                        None => {
                            ctx.error(at, format!("{what}: unknown method \"{m}\" (round_robin, weighted, least_loaded)"));
                            return None;
                        }
                    },
                };
                Some(Owner::Team { team: ix, method })
            }
            _ => {
                ctx.error(
                    at,
                    format!("{what}: an owner names exactly one of `rep` or `team`"),
                );
                None
            }
        }
    }
}

fn compile_territories(
    ctx: &mut Ctx,
    specs: &[Spanned<TerritorySpec>],
    owners: &OwnerResolver,
    global_fallback: bool,
) -> Vec<Territory> {
    let mut ix: HashMap<&str, usize> = HashMap::new();
    for (i, s) in specs.iter().enumerate() {
        if ix.insert(s.get_ref().id.as_str(), i).is_some() {
            ctx.error(
                s.span().start,
                format!("duplicate territory id \"{}\"", s.get_ref().id),
            );
        }
    }
    let mut parent: Vec<Option<usize>> = Vec::with_capacity(specs.len());
    for s in specs {
        let p = s.get_ref().parent.as_deref().and_then(|p| {
            let found = ix.get(p).copied();
            if found.is_none() {
                ctx.error(
                    s.span().start,
                    format!("territory \"{}\": undefined parent \"{p}\"", s.get_ref().id),
                );
            }
            found
        });
        parent.push(p);
    }
    // Depth, with cycle detection: walk up to a known depth or a root.
    let mut depth = vec![None::<u32>; specs.len()];
    for i in 0..specs.len() {
        let mut path = Vec::new();
        let mut cur = Some(i);
        while let Some(c) = cur {
            if depth[c].is_some() {
                break;
            }
            if path.contains(&c) {
                let ids: Vec<&str> = path
                    .iter()
                    .map(|&c: &usize| specs[c].get_ref().id.as_str())
                    .collect();
                ctx.error(
                    specs[i].span().start,
                    format!(
                        "territory hierarchy has a cycle: {} → {}",
                        ids.join(" → "),
                        specs[c].get_ref().id
                    ),
                );
                return Vec::new();
            }
            path.push(c);
            cur = parent[c];
        }
        let top = cur.and_then(|c| depth[c]).map_or(0, |d| d + 1);
        for (d, &c) in (top..).zip(path.iter().rev()) {
            depth[c] = Some(d);
        }
    }
    let mut own: Vec<Criterion> = Vec::with_capacity(specs.len());
    let mut out: Vec<Territory> = Vec::with_capacity(specs.len());
    for (i, s) in specs.iter().enumerate() {
        let (t, at) = (s.get_ref(), s.span().start);
        let what = format!("territory \"{}\"", t.id);
        own.push(match &t.criteria {
            Some(c) => compile_criterion(ctx, c, &what).unwrap_or(Criterion::True),
            None => Criterion::True,
        });
        let mut objects = [true; 3];
        if let Some(list) = &t.objects {
            objects = [false; 3];
            for o in list {
                match ObjectKind::parse(o) {
                    Some(k) => objects[k as usize] = true,
                    None => ctx.error(
                        at,
                        format!("{what}: unknown object \"{o}\" (lead, account, contact)"),
                    ),
                }
            }
        }
        let owner = t
            .owner
            .as_ref()
            .and_then(|o| owners.resolve(ctx, o, at, &what));
        let fallback = t
            .fallback
            .as_ref()
            .and_then(|o| owners.resolve(ctx, o, at, &format!("{what} fallback")));
        out.push(Territory {
            id: t.id.clone(),
            name: t.name.clone(),
            parent: parent[i],
            depth: depth[i].unwrap_or(0),
            priority: t.priority,
            objects,
            owner,
            fallback,
            require_working_hours: t.require_working_hours,
            required_skills: t.required_skills.iter().cloned().collect::<BTreeSet<_>>(),
            criteria: Criterion::True,
        });
    }
    // Inherit criteria and owners down the hierarchy (parents first).
    let mut by_depth: Vec<usize> = (0..out.len()).collect();
    by_depth.sort_by_key(|&i| out[i].depth);
    let mut fallback_in_chain = vec![false; out.len()];
    for i in by_depth {
        let mine = std::mem::replace(&mut own[i], Criterion::True);
        let (criteria, owner) = match out[i].parent {
            Some(p) => {
                let inherited = out[p].criteria.clone();
                (
                    all_of(inherited, mine),
                    out[i].owner.clone().or(out[p].owner.clone()),
                )
            }
            None => (mine, out[i].owner.clone()),
        };
        out[i].criteria = criteria;
        out[i].owner = owner;
        // A territory without an owner is a grouping node: what it alone
        // matches goes to a fallback, which must then exist.
        fallback_in_chain[i] =
            out[i].fallback.is_some() || out[i].parent.is_some_and(|p| fallback_in_chain[p]);
        if out[i].owner.is_none()
            && specs[i].get_ref().owner.is_none()
            && !fallback_in_chain[i]
            && !global_fallback
        {
            ctx.error(
                specs[i].span().start,
                format!(
                    "territory \"{}\" has no owner and no fallback, nor has any ancestor, and there is no global fallback",
                    out[i].id
                ),
            );
        }
    }
    out
}

fn all_of(a: Criterion, b: Criterion) -> Criterion {
    match (a, b) {
        (Criterion::True, x) | (x, Criterion::True) => x,
        (Criterion::All(mut xs), Criterion::All(ys)) => {
            xs.extend(ys);
            Criterion::All(xs)
        }
        (Criterion::All(mut xs), y) => {
            xs.push(y);
            Criterion::All(xs)
        }
        (x, y) => Criterion::All(vec![x, y]),
    }
}

pub(crate) fn compile_criterion(
    ctx: &mut Ctx,
    spec: &Spanned<CriterionSpec>,
    what: &str,
) -> Option<Criterion> {
    let (c, at) = (spec.get_ref(), spec.span().start);
    let combinators = [c.all.is_some(), c.any.is_some(), c.not.is_some()]
        .iter()
        .filter(|b| **b)
        .count();
    let range = c.min.is_some() || c.max.is_some();
    let ops = [
        c.equals.is_some(),
        c.in_.is_some(),
        c.not_in.is_some(),
        c.prefix.is_some(),
        range,
        c.exists.is_some(),
        c.missing.is_some(),
        c.regex.is_some(),
        c.domain_in.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if combinators > 0 {
        if combinators > 1 || ops > 0 || c.field.is_some() {
            ctx.error(at, format!("{what}: a criterion is either one combinator (all, any, not) or a field test, not both"));
            return None;
        }
        let list = |ctx: &mut Ctx, xs: &[Spanned<CriterionSpec>]| -> Option<Vec<Criterion>> {
            let v: Vec<Option<Criterion>> =
                xs.iter().map(|x| compile_criterion(ctx, x, what)).collect();
            v.into_iter().collect()
        };
        return match (&c.all, &c.any, &c.not) {
            (Some(xs), _, _) => list(ctx, xs).map(Criterion::All),
            (_, Some(xs), _) if xs.is_empty() => {
                ctx.error(at, format!("{what}: `any` needs at least one criterion"));
                None
            }
            (_, Some(xs), _) => list(ctx, xs).map(Criterion::Any),
            (_, _, Some(x)) => compile_criterion(ctx, x, what).map(|c| Criterion::Not(Box::new(c))),
            _ => None,
        };
    }
    let Some(name) = &c.field else {
        ctx.error(at, format!("{what}: criterion needs `field` and one operator (equals, in, not_in, prefix, min/max, exists, missing, regex, domain_in), or a combinator (all, any, not)"));
        return None;
    };
    if ops != 1 {
        let msg = if ops == 0 {
            "has no operator"
        } else {
            "has more than one operator"
        };
        ctx.error(at, format!("{what}: criterion on \"{name}\" {msg} (equals, in, not_in, prefix, min/max, exists, missing, regex, domain_in)"));
        return None;
    }
    let name = name.trim().to_string();
    let field = ctx.field(&name);
    let norm = Norm::for_field(&name);
    let set = |xs: Vec<String>| {
        xs.iter()
            .map(|x| norm.apply(x))
            .collect::<HashSet<String>>()
    };
    if let Some(v) = &c.equals {
        return Some(Criterion::In {
            field,
            values: set(vec![v.text()]),
        });
    }
    if let Some(v) = &c.in_ {
        return Some(Criterion::In {
            field,
            values: set(v.iter().map(|x| x.text()).collect()),
        });
    }
    if let Some(v) = &c.not_in {
        return Some(Criterion::NotIn {
            field,
            values: set(v.iter().map(|x| x.text()).collect()),
        });
    }
    if let Some(p) = &c.prefix {
        let prefixes: Vec<String> = p
            .texts()
            .iter()
            .map(|x| norm.apply(x))
            .filter(|x| !x.is_empty())
            .collect();
        if prefixes.is_empty() {
            ctx.error(
                at,
                format!("{what}: prefix on \"{name}\" lists no non-empty prefix"),
            );
            return None;
        }
        return Some(Criterion::Prefix { field, prefixes });
    }
    if range {
        if let (Some(lo), Some(hi)) = (c.min, c.max) {
            if lo > hi {
                ctx.error(
                    at,
                    format!("{what}: range on \"{name}\" has min {lo} above max {hi}"),
                );
                return None;
            }
        }
        return Some(Criterion::Range {
            field,
            min: c.min,
            max: c.max,
        });
    }
    if let Some(b) = c.exists {
        return Some(if b {
            Criterion::Exists(field)
        } else {
            Criterion::Missing(field)
        });
    }
    if let Some(b) = c.missing {
        return Some(if b {
            Criterion::Missing(field)
        } else {
            Criterion::Exists(field)
        });
    }
    if let Some(re) = &c.regex {
        return match regex::Regex::new(re) {
            Ok(re) => Some(Criterion::Regex { field, re }),
            Err(e) => {
                let first = e
                    .to_string()
                    .lines()
                    .last()
                    .unwrap_or_default()
                    .trim()
                    .to_string();
                ctx.error(at, format!("{what}: bad regex on \"{name}\": {first}"));
                None
            }
        };
    }
    let domains = c.domain_in.clone().unwrap_or_default();
    Some(Criterion::DomainIn {
        field,
        domains: domains.iter().map(|d| d.trim().to_lowercase()).collect(),
    })
}
