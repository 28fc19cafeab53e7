#!/usr/bin/env bash
# The whole test suite, as the README and CI run it:
#   formatting, clippy (warnings denied), the Rust tests on SQLite and
#   PostgreSQL, and the official Node and Python SDKs run unchanged against
#   the server, the hosted checkout page and the customer portal in headless
#   Chromium (axe-core accessibility checks; Chromium installed
#   from Debian when missing), and a bounded schemathesis fuzz pass over the
#   whole API (no server error, every documented response body as documented).
# Needs PostgreSQL at $KELVIQ_TEST_POSTGRES_URL (default: the local server).
set -euo pipefail
cd "$(dirname "$0")/.."

export KELVIQ_TEST_POSTGRES_URL="${KELVIQ_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"

step() { printf '\n== %s\n' "$*"; }

step "formatting"
cargo fmt --all -- --check

step "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
if ! command -v pdftotext >/dev/null 2>&1; then
  step "installing pdftotext (Debian package poppler-utils), to read invoice PDFs in the tests"
  $sudo apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q poppler-utils >/dev/null
fi

step "rust tests (SQLite and PostgreSQL)"
cargo test --workspace --locked

# `cargo test` above built target/debug/kelviq with the workspace's features;
# building it again with `-p` would recompile dependencies for nothing.
test -x target/debug/kelviq
# The fake Stripe on its own, for the browser tests (a link, its deps are built).
cargo build --locked -q -p fake-stripe --bin fake-stripe

step "official Node SDK against the server (SQLite and PostgreSQL)"
(cd compat/node && npm ci --silent --no-audit --no-fund)
(cd compat/node && KELVIQ_BIN="$PWD/../../target/debug/kelviq" node --test)

step "hosted checkout page and customer portal in headless Chromium (axe-core checks)"
if ! command -v chromium >/dev/null 2>&1; then
  echo "installing Chromium (Debian package chromium)"
  $sudo apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q chromium >/dev/null
fi
(cd compat/browser && npm ci --silent --no-audit --no-fund)
(cd compat/browser && KELVIQ_BIN="$PWD/../../target/debug/kelviq" FAKE_STRIPE_BIN="$PWD/../../target/debug/fake-stripe" \
  KELVIQ_CHROMIUM="$(command -v chromium)" node --test)

step "official Python SDK against the server (SQLite and PostgreSQL)"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -r compat/python/requirements.txt
KELVIQ_BIN="$PWD/target/debug/kelviq" FAKE_STRIPE_BIN="$PWD/target/debug/fake-stripe" \
  .venv/bin/python -m pytest -q -p no:cacheprovider compat/python

step "API fuzz pass: schemathesis against openapi.json (SQLite and PostgreSQL)"
.venv/bin/pip install --quiet --disable-pip-version-check -r compat/fuzz/requirements.txt
KELVIQ_BIN="$PWD/target/debug/kelviq" .venv/bin/python compat/fuzz/fuzz.py
