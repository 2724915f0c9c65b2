#!/bin/sh
# Installs what Weft needs on a Debian 12 machine, once: Debian packages, npm dependencies, and
# the build. Safe to run again: each step is skipped when already done. Sourced by demo.sh/test.sh.
set -eu
cd "$(dirname "$0")/.."

say() { printf '[setup] %s\n' "$*"; }

if [ "$(id -u)" != "0" ]; then
  echo "Weft creates network namespaces and needs root; run this as root." >&2
  exit 1
fi

if ! command -v node >/dev/null 2>&1 || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
  echo "Weft needs Node.js 20 or newer (found: $(node --version 2>/dev/null || echo none))." >&2
  exit 1
fi

# Debian packages: iproute2 + util-linux (ip, bridge, nsenter) and nftables for the datapath;
# etcd (server and etcdctl) for the cluster datastore; ping and procps (sysctl) for the tests; the reference CNI plugins (our yardstick, chained after weft in the tests) and
# iptables for their portmap; real runtimes (containerd + runc, podman) and busybox-static for an
# image built offline; iperf3 and sockperf for the data-path benchmark.
PACKAGES="iproute2 util-linux procps iputils-ping nftables etcd-server etcd-client containernetworking-plugins iptables containerd runc podman busybox-static iperf3 sockperf"
MISSING=""
for p in $PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || MISSING="$MISSING $p"
done
if [ -n "$MISSING" ]; then
  say "installing Debian packages:$MISSING"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends $MISSING >/dev/null
fi

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm dependencies (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
fi

if [ "${WEFT_SKIP_BUILD:-}" != "1" ]; then
  if [ ! -f dist/weft.mjs ] || [ ! -f dist/weft-cni.cjs ] || [ -n "$(find src scripts package.json tsconfig.json -newer dist/weft.mjs -print -quit)" ] || [ -n "${FORCE_BUILD:-}" ]; then
    say "building (tsc type-check + esbuild bundles)"
    npm run --silent build
  fi
fi
