# allot — common tasks. `make test` is what CI runs.
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: run test fmt lint check bench bench-realign bench-sync build clean drill

## Run the main job on embedded defaults (no Kafka, no CRM account needed).
run:
	$(CARGO) run --release -p allot -- run

## Format check, lints as errors, then every test (Kafka tests start a
## tansu broker on loopback; it is built once per machine if missing; the
## dashboard test drives Debian's headless Chromium, installed if missing).
test: fmt lint
	bash scripts/ensure-tansu.sh
	bash scripts/ensure-chromium.sh
	$(CARGO) test --workspace --lib --bins --tests --no-fail-fast
	$(CARGO) test --workspace --doc

fmt:
	$(CARGO) fmt --all -- --check

lint:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

build:
	$(CARGO) build --release -p allot

## Criterion benchmarks (decisions per second at 100 … 100,000 territories).
bench:
	$(CARGO) bench -p allot-rules --bench decide

## Realignment of 1,000,000 generated accounts between two generated rule sets.
bench-realign: build
	mkdir -p target/bench
	./target/release/allot gen rules --territories 1000 --seed 1 > target/bench/old.toml
	./target/release/allot gen rules --territories 1000 --seed 2 > target/bench/new.toml
	./target/release/allot gen records --count 1000000 --seed 3 --object account > target/bench/accounts.jsonl
	time ./target/release/allot realign --rules target/bench/old.toml --to target/bench/new.toml \
		--records target/bench/accounts.jsonl --now 2026-11-25T17:00:00Z --top 5

## Sync throughput: 100,000 generated accounts, leads and contacts per CRM,
## at 0 and 50 ms of API latency; records/s and the share of the budget used.
bench-sync: build
	bash scripts/bench-sync.sh

## The kill -9 drill: 2,000 leads arriving while `allot run` is SIGKILLed 20
## times, the emulated CRM answering 400 ms late; prints the leads written twice.
drill:
	ALLOT_DRILL_LEADS=2000 ALLOT_DRILL_KILLS=20 $(CARGO) test --release -p allot --test crash_drill -- --nocapture

clean:
	$(CARGO) clean
