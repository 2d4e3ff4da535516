//! Decisions per second at 100 … 100,000 territories, indexed and naive.
//! `cargo bench -p allot-rules --bench decide`

use std::time::Duration;

use allot_core::{EngineState, ObjectKind, Record};
use allot_rules::{decide_with, gen, Detail, Matcher, RuleSet};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const NOW: i64 = 1_795_000_000_000;

fn setup(n: usize) -> (RuleSet, Vec<Record>) {
    let text = gen::rules_toml(&gen::GenSpec::new(n, 42));
    let rules = RuleSet::from_toml(&text, "gen").unwrap_or_else(|e| panic!("{e}"));
    let records = gen::records(1000, 7, ObjectKind::Lead).collect();
    (rules, records)
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("decide");
    group.throughput(Throughput::Elements(1));
    for n in [100usize, 1_000, 10_000, 100_000] {
        let (rules, records) = setup(n);
        let state = EngineState::default();
        let mut i = 0usize;
        for (name, matcher, detail) in [
            ("indexed", Matcher::Indexed, Detail::Full),
            ("indexed-lean", Matcher::Indexed, Detail::Lean),
            ("naive", Matcher::Naive, Detail::Full),
        ] {
            if matcher == Matcher::Naive && n >= 100_000 {
                group
                    .sample_size(10)
                    .measurement_time(Duration::from_secs(10));
            } else {
                group
                    .sample_size(50)
                    .measurement_time(Duration::from_secs(3));
            }
            group.bench_with_input(BenchmarkId::new(name, n), &n, |b, _| {
                b.iter(|| {
                    i = (i + 1) % records.len();
                    decide_with(&rules, &state, &records[i], NOW, matcher, detail)
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
