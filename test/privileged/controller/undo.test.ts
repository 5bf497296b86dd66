/**
 * createSandbox's undo when netctl makes the sandbox's netns itself: the
 * part of test/unit/controller/undo.test.ts that needs the kernel. The
 * store refusing the record, after the netns and its /etc files were made,
 * leaves no netns, no run dir, no record, no intent.
 */
import { existsSync } from 'node:fs';
import { expect, it } from 'vitest';
import { kernelInventory, storeInventory } from '../../helpers/inventory.js';
import { memoryController } from '../../helpers/memory-controller.js';

it('the store refuses the record of a sandbox with its own netns: the netns and its files go; the name can be had again', async () => {
  const m = memoryController();
  try {
    const leftovers = async () => ({ kernel: kernelInventory(), store: await storeInventory(m.kv) });
    const before = await leftovers();
    m.refuseNextWrite('sandboxes/');
    await expect(m.api.createSandbox({ name: 'own' })).rejects.toThrow('refused');
    expect(await leftovers()).toEqual(before);
    const sandbox = await m.api.createSandbox({ name: 'own' });
    expect(existsSync(sandbox.key)).toBe(true);
    expect((await leftovers()).kernel.netns).toEqual([...before.kernel.netns, 'netctl-own']);
    await m.api.deleteSandbox('own');
    expect(await leftovers()).toEqual(before);
  } finally {
    await m.close();
  }
});
