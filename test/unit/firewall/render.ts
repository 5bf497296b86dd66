/** Test helper: the iptables-restore input that adding rules to empty tables produces. */
import { Planner, renderRestore } from '../../../src/firewall/iptables/plan.js';
import { emptySnapshot } from '../../../src/firewall/iptables/save.js';
import type { ChainRef, Rule } from '../../../src/firewall/rule.js';

/** `existing`: chains other software already made (e.g. dockerd's DOCKER-USER). */
export function restoreText(rules: readonly Rule[], existing: readonly ChainRef[] = []): string {
  const snapshots = new Map([
    [4 as const, emptySnapshot()],
    [6 as const, emptySnapshot()],
  ]);
  for (const { family, table, chain } of existing) snapshots.get(family)?.[table].set(chain, []);
  const planner = new Planner(snapshots);
  planner.add(rules);
  let text = '';
  for (const family of [4, 6] as const) {
    const restore = renderRestore(planner.script.get(family));
    if (restore) text += `# ${family === 4 ? 'iptables' : 'ip6tables'}-restore --noflush\n${restore}`;
  }
  return text;
}
