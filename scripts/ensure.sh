#!/bin/sh
# Install what is missing on a fresh machine, then build: the first step of
# both `npm test` and `npm run quickstart`. Cheap when everything is there.
set -eu
cd "$(dirname "$0")/.."

# command-or-file -> Debian package
need="ip:iproute2 iptables:iptables nft:nftables unshare:util-linux nsenter:util-linux
redis-server:redis-server dockerd:docker.io /usr/lib/cni/bridge:containernetworking-plugins
/bin/busybox:busybox-static podman:podman runc:runc iperf3:iperf3 ping:iputils-ping jq:jq g++:g++ make:make python3:python3"
missing=""
for pair in $need; do
  what=${pair%%:*} pkg=${pair#*:}
  case $what in
    /*) [ -e "$what" ] || missing="$missing $pkg" ;;
    *) command -v "$what" >/dev/null 2>&1 || missing="$missing $pkg" ;;
  esac
done
# The tests' container images are /bin/busybox alone, so it must be the static
# one: Debian's busybox package (which initramfs-tools recommends) is linked
# dynamically and runs in no image. busybox-static replaces it.
if [ -e /bin/busybox ] && ldd /bin/busybox 2>/dev/null | grep -q '=>'; then
  missing="$missing busybox-static"
fi
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "netctl: installing system packages:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
  else
    echo "netctl: missing system packages:$missing (install them as root, e.g. apt-get install$missing)" >&2
    exit 1
  fi
fi

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-fund --no-audit
fi
sh scripts/build.sh
