#!/usr/bin/env -S node --max-semi-space-size=1 --lite-mode
// A 1 MiB young generation (V8's default grows to 16 MiB per semi-space):
// the daemon's allocations are small and short-lived, and this keeps its
// resident memory down by ~15 MiB for a few more, cheap scavenges.
import '../dist/src/cli/main.js';
