#!/bin/sh
# The tests: unit and property tests, then end-to-end tests with the real kernel in network
# namespaces (root). Installs what it needs on first use; always runs on a fresh build.
set -eu
cd "$(dirname "$0")/.."
FORCE_BUILD=1 ./scripts/setup.sh
. ./scripts/node-path.sh
exec node scripts/run-tests.mjs "$@"
