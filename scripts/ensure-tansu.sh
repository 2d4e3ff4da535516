#!/usr/bin/env bash
# Makes sure the tansu 0.6.0 Kafka broker is installed for the Kafka tests.
# Skipped when ALLOT_TEST_KAFKA_BOOTSTRAP names a broker to test against.
# The install builds from crates.io (about 10 minutes on 2 cores, once per machine).
set -euo pipefail

VERSION="0.6.0"

if [[ -n "${ALLOT_TEST_KAFKA_BOOTSTRAP:-}" ]]; then
    echo "ensure-tansu: using the broker at ${ALLOT_TEST_KAFKA_BOOTSTRAP}, tansu not needed"
    exit 0
fi

cargo_bin="${CARGO_HOME:-$HOME/.cargo}/bin"
for candidate in "$(command -v tansu 2>/dev/null || true)" "$cargo_bin/tansu"; do
    if [[ -n "$candidate" && -x "$candidate" ]] \
        && [[ "$("$candidate" --version 2>/dev/null)" == "tansu $VERSION" ]]; then
        echo "ensure-tansu: $candidate is tansu $VERSION"
        exit 0
    fi
done

echo "ensure-tansu: installing tansu $VERSION (SQLite storage) with cargo"
# --locked: tansu's own lock file, so no newer dependency can demand a newer rustc.
# dynostore,libsql: the SQLite storage engine; a plain install has no engine at all.
cargo install tansu --version "$VERSION" --locked --features dynostore,libsql
"$cargo_bin/tansu" --version
