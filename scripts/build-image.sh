#!/bin/sh
# Builds the Weft container image (deploy/image/Containerfile) with podman, from no registry: a
# Debian 12 root filesystem made by mmdebstrap from the Debian archive (kept in
# /var/cache/weft/image, made again monthly or when the package list changes), Node.js 24, and
# the build (dist/ as it is: ./scripts/setup.sh builds it when the sources are newer).
# Usage: ./scripts/build-image.sh [--tag NAME:TAG]   (default: localhost/weft:<package.json version>)
# podman's own settings apply (CONTAINERS_CONF, CONTAINERS_STORAGE_CONF: the tests build into private storage).
set -eu
cd "$(dirname "$0")/.."

say() { printf '[image] %s\n' "$*"; }

./scripts/setup.sh
. ./scripts/node-path.sh
TAG="localhost/weft:$(node -p 'require("./package.json").version')"
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) [ $# -ge 2 ] || { echo "--tag needs a value: NAME:TAG" >&2; exit 2; }; TAG=$2; shift 2 ;;
    *) echo "usage: $0 [--tag NAME:TAG]" >&2; exit 2 ;;
  esac
done

# What the agent runs besides itself: ip and bridge (iproute2), nft and libnftables (nftables),
# wg and wireguard-go (encryption, where the node's kernel has no WireGuard module); libstdc++
# for node; CA certificates for an API server's public CA.
SUITE=bookworm
INCLUDE=iproute2,nftables,wireguard-tools,wireguard-go,libstdc++6,ca-certificates
CACHE=/var/cache/weft/image
# Made again each month (the security archive's updates) and when the package list changes.
KEY=$(printf '%s %s %s' "$SUITE" "$INCLUDE" "$(date -u +%Y-%m)" | sha256sum | cut -c1-16)
ROOTFS="$CACHE/rootfs-$SUITE-$KEY.tar"
if [ ! -f "$ROOTFS" ]; then
  say "making a Debian $SUITE root filesystem with mmdebstrap (essential + $INCLUDE) into $ROOTFS"
  mkdir -p "$CACHE"
  mmdebstrap --quiet --mode=root --format=tar --variant=essential --include="$INCLUDE" \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    "$SUITE" "$ROOTFS.tmp" \
    "deb http://deb.debian.org/debian $SUITE main" "deb http://deb.debian.org/debian-security $SUITE-security main"
  mv "$ROOTFS.tmp" "$ROOTFS"
  # Older root filesystems (another month, another package list) are not used again.
  for old in "$CACHE"/rootfs-*.tar; do
    [ "$old" = "$ROOTFS" ] || { say "removing the stale $old"; rm -f "$old"; }
  done
fi

CTX=$(mktemp -d)
trap 'rm -rf "$CTX"' EXIT
ln "$ROOTFS" "$CTX/rootfs.tar" 2>/dev/null || cp "$ROOTFS" "$CTX/rootfs.tar"
mkdir -p "$CTX/weft/usr/local/bin" "$CTX/weft/usr/lib/weft/dist"
cp "$(readlink -f "$(command -v node)")" "$CTX/weft/usr/local/bin/node"
cp dist/* "$CTX/weft/usr/lib/weft/dist/"
cp package.json package-lock.json "$CTX/weft/usr/lib/weft/"
say "npm ci --omit=dev: the dependencies the bundle loads at run time (etcd3, for --datastore etcd)"
(cd "$CTX/weft/usr/lib/weft" && npm ci --omit=dev --ignore-scripts --prefer-offline --no-audit --no-fund --loglevel=error >/dev/null)
printf '#!/bin/sh\nexec /usr/local/bin/node /usr/lib/weft/dist/weft.mjs "$@"\n' >"$CTX/weft/usr/local/bin/weft"
chmod 0755 "$CTX/weft/usr/local/bin/weft"
say "podman build -t $TAG (deploy/image/Containerfile)"
podman build --quiet --tag "$TAG" --file deploy/image/Containerfile "$CTX" >/dev/null
say "built $TAG: $(podman image inspect --format '{{.Size}}' "$TAG" | awk '{printf "%.0f MB", $1/1e6}')"
