#!/bin/sh
# `npm run quickstart`: show netctl working. The demo runs in a throwaway
# network + mount namespace (scripts/isolate.sh) with its state in a temp
# dir, so the host's network and /var/lib/netctl are never touched; it all
# vanishes when the demo ends.
set -eu
cd "$(dirname "$0")/.."

if [ "${NETCTL_ISOLATED:-}" != 1 ]; then
  echo "== netctl doctor: can this machine run netctl?"
  node bin/netctl.js doctor || exit $?
  exec sh scripts/isolate.sh sh scripts/quickstart.sh
fi

demo=$(mktemp -d /tmp/netctl-quickstart.XXXXXX)
export NETCTL_STATE_DIR="$demo/state" NETCTL_SOCKET=/run/netctl/api.sock
netctl() { node bin/netctl.js "$@"; }
step() { printf '\n== %s\n$ netctl %s\n' "$1" "$2"; }

node bin/netctl.js daemon >"$demo/daemon.log" 2>&1 &
daemon=$!
trap 'kill "$daemon" 2>/dev/null || true; wait "$daemon" 2>/dev/null || true; rm -rf "$demo"' EXIT
for _ in $(seq 50); do [ -S "$NETCTL_SOCKET" ] && break; sleep 0.1; done
[ -S "$NETCTL_SOCKET" ] || { cat "$demo/daemon.log"; exit 1; }
echo "\n== the daemon runs (pid $daemon) on the embedded store, API at $NETCTL_SOCKET"

step 'a bridge network' 'network create --subnet 10.88.0.0/24 demo'
netctl network create --subnet 10.88.0.0/24 demo

mkdir -p "$demo/www" && echo 'hello from a netctl sandbox' >"$demo/www/index.html"
step 'a web server in a sandbox, port 80 published on the host as 8080' \
  "run -d --name web --network demo -p 8080:80 -- busybox httpd -f -p 80 -h $demo/www"
netctl run -d --name web --network demo -p 8080:80 -- busybox httpd -f -p 80 -h "$demo/www"

step 'a second sandbox pings the first by name' 'run --rm --name client --network demo -- busybox ping -c 2 web'
netctl run --rm --name client --network demo -- busybox ping -c 2 web

printf '\n== the published port, fetched from the host\n$ GET http://127.0.0.1:8080/\n'
node -e 'fetch("http://127.0.0.1:8080/", { signal: AbortSignal.timeout(3000) }).then((r) => r.text()).then((t) => process.stdout.write(t))'

step 'the network, with its sandboxes and published ports' 'network inspect demo'
netctl network inspect demo

step 'what runs' 'sandbox ls'
netctl sandbox ls

step 'clean up' 'sandbox rm web && netctl network rm demo'
netctl sandbox rm web
netctl network rm demo
netctl gc --dry-run

printf '\n== second act: an overlay network across two hosts\n'
kill "$daemon" 2>/dev/null; wait "$daemon" 2>/dev/null || true
node scripts/quickstart-overlay.mjs

cat <<'NEXT'

That was all inside a throwaway namespace. Next:
  npm test                          every test, in a private namespace
  npm run bench -- kernel           our kernel layer against ip(8)
  node bin/netctl.js --help         the command line; docs/cli.md
  sudo node bin/netctl.js daemon    the daemon for real (state in /var/lib/netctl),
                                    also Docker's netctl-bridge and netctl plugins: docs/docker.md
  node bin/netctl.js cni install    netctl as a CNI plugin for podman or containerd: docs/cni.md
  docs/overlay.md                   overlay networks across hosts on a shared store
  npm run bench -- overlay          netctl's overlay against a hand-built VXLAN
NEXT
