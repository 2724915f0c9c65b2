#!/bin/sh
# The demo: one node and two pods in network namespaces of their own (the machine's network is
# not touched). Installs what it needs on first use.
set -eu
cd "$(dirname "$0")/.."
./scripts/setup.sh
. ./scripts/node-path.sh
exec node dist/weft.mjs demo
