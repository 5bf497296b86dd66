#!/bin/sh
# Build everything: the native addon (node-gyp against Node's own headers in
# /usr/include/node; nothing is downloaded) and the TypeScript.
set -eu
cd "$(dirname "$0")/.."
(
  cd native
  [ -f build/Makefile ] || ../node_modules/.bin/node-gyp configure --nodedir=/usr --loglevel=warn
  ../node_modules/.bin/node-gyp build --nodedir=/usr --loglevel=warn
)
node_modules/.bin/tsc -p .
