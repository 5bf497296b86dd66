/**
 * Runs in every privileged test file. Refuses to run outside the private
 * namespace made by scripts/isolate.sh, and after each file checks that the
 * run's namespace holds nothing the file made: no netns, no link beyond lo,
 * no iptables/nftables rule.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { afterAll, beforeAll } from 'vitest';
import { isolationProblem } from '../../src/isolation.js';

function extraLinks(): string[] {
  return (
    JSON.parse(execFileSync('ip', ['-j', 'link', 'show'], { encoding: 'utf8' })) as { ifname: string }[]
  )
    .map((l) => l.ifname)
    .filter((name) => name !== 'lo');
}

function leaks(): string[] {
  const found: string[] = [];
  const netns = readdirSync('/run/netns');
  if (netns.length) found.push(`netns left in /run/netns: ${netns.join(' ')}`);
  const links = extraLinks();
  if (links.length) found.push(`links left: ${links.join(' ')}`);
  // Both flavours: nft (Debian's default) and legacy keep separate tables.
  for (const save of ['iptables-save', 'ip6tables-save', 'iptables-legacy-save', 'ip6tables-legacy-save']) {
    const rules = execFileSync(save, { encoding: 'utf8' })
      .split('\n')
      .filter(
        (line) =>
          line.startsWith('-A ') ||
          (line.startsWith(':') && !/^:(INPUT|OUTPUT|FORWARD|PREROUTING|POSTROUTING) /.test(line)),
      );
    if (rules.length) found.push(`${save}: ${rules.slice(0, 5).join(' | ')}`);
  }
  return found;
}

// Checked when this file loads, before any hook is registered: outside the
// private namespace no test runs and no cleanup (which deletes links and
// rules) can ever touch the host.
const problem = isolationProblem();
if (problem) {
  throw new Error(
    `PRIVILEGED TESTS NOT RUN (${problem}): they must run as root inside the private namespace of ` +
      'scripts/isolate.sh (use `npm test`), never in the host namespace',
  );
}

beforeAll(() => {
  const before = leaks();
  if (before.length)
    throw new Error(`the test namespace is not clean before this file:\n${before.join('\n')}`);
});

// Remove what a failed file left, so the next file starts clean and only the
// guilty file is reported.
function scrub(): void {
  for (const name of readdirSync('/run/netns')) execFileSync('ip', ['netns', 'del', name]);
  // One at a time, re-reading: deleting a veth takes its peer with it.
  for (let link = extraLinks()[0]; link; link = extraLinks()[0]) execFileSync('ip', ['link', 'del', link]);
  for (const restore of [
    'iptables-restore',
    'ip6tables-restore',
    'iptables-legacy-restore',
    'ip6tables-legacy-restore',
  ]) {
    execFileSync(restore, { input: '*filter\nCOMMIT\n*nat\nCOMMIT\n*mangle\nCOMMIT\n*raw\nCOMMIT\n' });
  }
}

afterAll(() => {
  const found = leaks();
  if (found.length) {
    scrub();
    throw new Error(`this test file leaked kernel objects:\n${found.join('\n')}`);
  }
});
