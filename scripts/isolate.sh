#!/bin/sh
# Run a command inside a private network + mount namespace, so nothing it
# does (links, addresses, routes, iptables rules, named netns, mounts) can
# reach the host's own network, even if it crashes. The namespace dies with
# the command. /run is a fresh tmpfs: /run/netns, /run/netctl, the xtables
# lock and Docker's plugin dir are private too.
set -eu
if [ "${NETCTL_ISOLATED:-}" = 1 ]; then exec "$@"; fi
if [ "$(id -u)" != 0 ]; then
  echo "netctl: this needs root (network namespaces, CAP_NET_ADMIN); try: sudo $*" >&2
  exit 77
fi
exec unshare --net --mount --propagation private -- sh -c '
  set -e
  mount -t tmpfs -o mode=755 tmpfs /run
  mkdir -p /run/netns /run/netctl /run/docker/plugins /run/lock
  ip link set lo up
  # NETCTL_ISOLATED_NETNS names the namespace made here by its inode, so a
  # program can check it really runs inside it: NETCTL_ISOLATED=1 alone can
  # be set by hand in the host namespace.
  NETCTL_ISOLATED=1 NETCTL_ISOLATED_NETNS=$(stat -L -c %i /proc/self/ns/net) exec "$@"' isolate "$@"
