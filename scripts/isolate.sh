#!/bin/sh
# Run a command inside a private network + mount + pid namespace, so nothing
# it does (links, addresses, routes, iptables rules, named netns, mounts,
# processes) can reach the host's own network or outlive it, even if it
# crashes. The namespaces die with the command. /run is a fresh tmpfs: /run/netns, /run/netctl, the xtables
# lock and Docker's plugin dir are private too.
set -eu
if [ "${NETCTL_ISOLATED:-}" = 1 ]; then exec "$@"; fi
if [ "$(id -u)" != 0 ]; then
  echo "netctl: this needs root (network namespaces, CAP_NET_ADMIN); try: sudo $*" >&2
  exit 77
fi
# Its own pid namespace too: every process the command starts (daemons,
# dockerd, containerd's shims, their containers) dies with it, even after a
# kill -9. The sh stays as the namespace's init, to reap orphans; the
# command runs as its child, stdin handed on (an asynchronous list's would
# be /dev/null).
exec unshare --net --mount --propagation private --pid --kill-child --mount-proc -- sh -c '
  set -e
  mount -t tmpfs -o mode=755 tmpfs /run
  mkdir -p /run/netns /run/netctl /run/docker/plugins /run/lock
  ip link set lo up
  # NETCTL_ISOLATED_NETNS names the namespace made here by its inode, so a
  # program can check it really runs inside it: NETCTL_ISOLATED=1 alone can
  # be set by hand in the host namespace.
  exec 3<&0
  NETCTL_ISOLATED=1 NETCTL_ISOLATED_NETNS=$(stat -L -c %i /proc/self/ns/net) "$@" <&3 3<&- &
  exec 3<&-
  wait $!' isolate "$@"
