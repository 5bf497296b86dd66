#!/bin/sh
# `npm run quickstart`: show netctl working on this machine. Every probe runs
# in throwaway namespaces; the host's network is not changed.
set -eu
cd "$(dirname "$0")/.."
echo "== netctl doctor: can this machine run netctl?"
node bin/netctl.js doctor
cat <<'NEXT'

Next:
  npm test                      run every test (inside a private network namespace)
  npm run bench -- kernel       our kernel layer against ip(8), side by side
  node bin/netctl.js --help     the command line
NEXT
