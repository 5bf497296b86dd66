import { describe, expect, it } from 'vitest';
import { Gate } from '../../../src/controller/gate.js';

/** A promise and its resolver, to hold a holder of the gate open. */
function held() {
  let release: () => void = () => {};
  const promise = new Promise<void>((r) => {
    release = r;
  });
  return { promise, release };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('Gate', () => {
  it('runs shared holders side by side', async () => {
    const gate = new Gate();
    const a = held();
    const log: string[] = [];
    const first = gate.shared(async () => {
      log.push('a in');
      await a.promise;
      log.push('a out');
    });
    const second = gate.shared(async () => {
      log.push('b');
    });
    await second;
    expect(log).toEqual(['a in', 'b']);
    a.release();
    await first;
  });

  it('runs an exclusive holder alone: after the shared ones running, before new ones', async () => {
    const gate = new Gate();
    const a = held();
    const log: string[] = [];
    const op1 = gate.shared(async () => {
      log.push('op1 in');
      await a.promise;
      log.push('op1 out');
    });
    const gc = gate.exclusive(async () => {
      log.push('gc');
      await tick();
      log.push('gc done');
    });
    await tick();
    const op2 = gate.shared(async () => {
      log.push('op2');
    });
    await tick();
    expect(log).toEqual(['op1 in']);
    a.release();
    await Promise.all([op1, gc, op2]);
    expect(log).toEqual(['op1 in', 'op1 out', 'gc', 'gc done', 'op2']);
  });

  it('is re-entrant: what runs inside a holder never waits for the gate', async () => {
    const gate = new Gate();
    const log: string[] = [];
    // gc's teardowns use the operations' own code.
    await gate.exclusive(async () => {
      await gate.shared(async () => {
        log.push('shared inside exclusive');
      });
    });
    // A shared holder nesting another while gc waits for it.
    const a = held();
    const outer = gate.shared(async () => {
      await a.promise;
      await gate.shared(async () => {
        log.push('shared inside shared');
      });
    });
    const gc = gate.exclusive(async () => {
      log.push('gc');
    });
    await tick();
    a.release();
    await Promise.all([outer, gc]);
    expect(log).toEqual(['shared inside exclusive', 'shared inside shared', 'gc']);
  });

  it('passes errors through and frees the gate', async () => {
    const gate = new Gate();
    await expect(gate.exclusive(async () => Promise.reject(new Error('gc failed')))).rejects.toThrow(
      'gc failed',
    );
    await expect(gate.shared(async () => Promise.reject(new Error('op failed')))).rejects.toThrow(
      'op failed',
    );
    expect(await gate.exclusive(async () => 'again')).toBe('again');
  });
});
