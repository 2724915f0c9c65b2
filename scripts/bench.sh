#!/bin/sh
# One command per benchmark (root): ./scripts/bench.sh cni|cni-lab|forwarder|links|datapath|memory|cluster|encryption|flows|policy|kube-startup [flags]
# Installs what it needs on first use, builds, runs; results go to stdout (see docs/benchmarks.md).
set -eu
cd "$(dirname "$0")/.."
which="${1:-}"
case "$which" in
  cni) script=cni-add-del ;;
  cni-lab) script=cni-lab ;;
  forwarder) script=forwarder ;;
  links) script=link-batches ;;
  datapath) script=datapath ;;
  memory) script=agent-memory ;;
  cluster) script=cluster ;;
  encryption) script=encryption ;;
  flows) script=flows ;;
  policy) script=policy ;;
  kube-startup) script=kube-startup ;;
  *) echo "usage: $0 cni|cni-lab|forwarder|links|datapath|memory|cluster|encryption|flows|policy|kube-startup [flags]" >&2; exit 2 ;;
esac
shift
./scripts/setup.sh
. ./scripts/node-path.sh
# Benchmarks measure weft, not this shell's environment: NODE_EXTRA_CA_CERTS slows every node start.
exec env -u NODE_EXTRA_CA_CERTS node "build/bench/$script.js" "$@"
