#!/bin/sh
# Stands in for native/build/Release/netctl-exec in unit tests (which must
# not enter namespaces): reports its arguments on stderr, then runs the
# command after `--` here.
echo "fake-netctl-exec $*" >&2
while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do shift; done
shift
exec "$@"
