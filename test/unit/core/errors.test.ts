import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  Errors,
  errorClassOf,
  errorSpecs,
  HTTP_STATUS,
  isCode,
  LAYER_CODES,
  specOf,
} from '../../../src/errors.js';
import { packageRoot } from '../../../src/paths.js';

function documentedCodes(): { code: string; class: string; message: string }[] {
  const doc = readFileSync(join(packageRoot, 'docs', 'errors.md'), 'utf8');
  return [...doc.matchAll(/^\| `(NETCTL_[A-Z_]+)` \| (\w+) \| (.*) \|$/gm)].map((m) => ({
    code: m[1] as string,
    class: m[2] as string,
    message: (m[3] as string).replaceAll('\\|', '|'),
  }));
}

describe('error registry', () => {
  it('matches docs/errors.md exactly: every code, class and message', () => {
    expect(documentedCodes()).toEqual(
      errorSpecs().map((s) => ({ code: s.code, class: s.class, message: s.message })),
    );
  });

  it('formats messages and carries code, class and HTTP status', () => {
    const err = new Errors.NetworkNotFound('web');
    expect(err).toBeInstanceOf(Error);
    expect(err.message).toBe('network web not found');
    expect(err.code).toBe('NETCTL_NETWORK_NOT_FOUND');
    expect(err.statusCode).toBe(HTTP_STATUS.notFound);
    expect(errorClassOf(err)).toBe('notFound');
    expect(specOf(err)?.class).toBe('notFound');
  });

  it('maps every lower-layer code as docs/errors.md says', () => {
    const doc = readFileSync(join(packageRoot, 'docs', 'errors.md'), 'utf8');
    const documented = Object.fromEntries(
      [...doc.matchAll(/^\| `((?:kv|ipam|kernel)\.[a-z_]+)` \| `(NETCTL_[A-Z_]+)` \|$/gm)].map((m) => [
        m[1],
        m[2],
      ]),
    );
    expect(documented).toEqual(LAYER_CODES);
    for (const [layer, code] of Object.entries(LAYER_CODES)) {
      expect(specOf(Object.assign(new Error('x'), { code: layer }))?.code, layer).toBe(code);
    }
  });

  it('isCode: one of the given registry errors, by code, mapped lower-layer codes included', () => {
    const notFound = new Errors.SandboxNotFound('s1');
    expect(isCode(notFound, Errors.SandboxNotFound)).toBe(true);
    expect(isCode(notFound, Errors.NetworkNotFound, Errors.SandboxNotFound)).toBe(true);
    expect(isCode(notFound, Errors.NetworkNotFound)).toBe(false);
    // As the CLI's client rebuilds it from a daemon's answer: a plain object with the code.
    expect(isCode({ code: 'NETCTL_SANDBOX_NOT_FOUND' }, Errors.SandboxNotFound)).toBe(true);
    expect(isCode({ code: 'ipam.pool_overlap' }, Errors.PoolOverlap)).toBe(true);
    expect(isCode(new Error('x'), Errors.Internal)).toBe(false);
    expect(isCode(undefined, Errors.Internal)).toBe(false);
  });

  it('treats anything unregistered as internal', () => {
    expect(errorClassOf(new Error('x'))).toBe('internal');
    expect(errorClassOf(Object.assign(new Error('x'), { code: 'ENOENT' }))).toBe('internal');
    expect(errorClassOf(null)).toBe('internal');
  });
});
