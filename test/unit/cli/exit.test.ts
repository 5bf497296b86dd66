import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { EXIT_STATUS, exitStatusOf } from '../../../src/cli/exit.js';
import { Errors } from '../../../src/errors.js';
import { packageRoot } from '../../../src/paths.js';

describe('CLI exit statuses', () => {
  it('match the CLI column of docs/errors.md, class by class', () => {
    const doc = readFileSync(join(packageRoot, 'docs', 'errors.md'), 'utf8');
    const documented = Object.fromEntries(
      [...doc.matchAll(/^\| (\w+) \| [^|]+ \| [^|]+ \| [^|]+ \| (\d+) \|$/gm)].map((m) => [
        m[1],
        Number(m[2]),
      ]),
    );
    expect(documented).toEqual(EXIT_STATUS);
  });

  it('come from the error class; anything unregistered is 1', () => {
    expect(exitStatusOf(new Errors.InvalidCidr('x'))).toBe(2);
    expect(exitStatusOf(new Errors.PoolNotFound('x'))).toBe(3);
    expect(exitStatusOf(new Errors.PortInUse('80', 'x'))).toBe(4);
    expect(exitStatusOf(new Errors.StoreUnavailable('x', 'y'))).toBe(5);
    expect(exitStatusOf(new Errors.Internal('x'))).toBe(1);
    expect(exitStatusOf(new Error('x'))).toBe(1);
    // An error from a newer daemon, code unknown here, keeps its wire class.
    expect(exitStatusOf(Object.assign(new Error('x'), { code: 'NETCTL_NEW', class: 'conflict' }))).toBe(4);
  });
});
