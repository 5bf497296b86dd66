import { expect, it } from 'vitest';
import { startDockerd } from '../../../bench/lib/dockerd.js';

it('starts a private dockerd 20.10 that runs a busybox container', async () => {
  const d = await startDockerd('tdockerd');
  try {
    const r = await d.docker(['run', '--rm', '--network', 'none', 'busybox', 'echo', 'hi'], 60000);
    expect(r.stdout).toBe('hi\n');
  } finally {
    await d.stop();
  }
}, 120000);
