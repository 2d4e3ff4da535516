#!/usr/bin/env bash
# Makes sure a headless-capable Chromium is installed for the dashboard's
# browser test (crates/allot/tests/dashboard.rs), from Debian's packages.
# Skipped when ALLOT_TEST_CHROMIUM names a browser binary to use instead.
set -euo pipefail

if [[ -n "${ALLOT_TEST_CHROMIUM:-}" ]]; then
    if [[ -x "${ALLOT_TEST_CHROMIUM}" ]]; then
        echo "ensure-chromium: using ${ALLOT_TEST_CHROMIUM}"
        exit 0
    fi
    echo "ensure-chromium: ALLOT_TEST_CHROMIUM=${ALLOT_TEST_CHROMIUM} is not an executable" >&2
    exit 1
fi

if command -v chromium >/dev/null 2>&1; then
    echo "ensure-chromium: $(command -v chromium) is $(chromium --version 2>/dev/null || echo 'installed')"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-chromium: no chromium and no apt-get; install Chromium and set ALLOT_TEST_CHROMIUM" >&2
    exit 1
fi

sudo=""
if [[ "$(id -u)" != "0" ]]; then
    sudo="sudo"
fi

echo "ensure-chromium: installing Debian's chromium with apt-get"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
chromium --version
