import { describe, expect, it } from 'vitest';
import { connectSchema, createNetworkSchema, createSandboxSchema } from '../../../src/core/schemas.js';
import { formatPath, parseRequest } from '../../../src/core/validate.js';
import { specOf } from '../../../src/errors.js';

function message(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(specOf(err)?.code).toBe('NETCTL_INVALID_REQUEST');
    return (err as Error).message;
  }
  throw new Error('expected a failure');
}

describe('parseRequest', () => {
  it('returns the parsed value with defaults', () => {
    expect(parseRequest(createSandboxSchema, { name: 'a' })).toEqual({ name: 'a', labels: {} });
  });

  it('words each kind of problem for people, naming the field', () => {
    expect(message(() => parseRequest(createNetworkSchema, { name: 'a b' }))).toBe(
      'invalid request: name: "a b" is not a valid name: names must match [a-zA-Z0-9][a-zA-Z0-9_.-]* (at most 64 characters)',
    );
    expect(
      message(() => parseRequest(createNetworkSchema, { name: 'a', ipam: { config: [{ gateway: 'x' }] } })),
    ).toBe('invalid request: ipam.config[0].gateway: "x" is not a valid IP address');
    expect(message(() => parseRequest(connectSchema, { network: 'n', sandbox: 's', ipv6: '1.2.3.4' }))).toBe(
      'invalid request: ipv6: "1.2.3.4" is not a valid IPv6 address',
    );
    expect(message(() => parseRequest(createNetworkSchema, { name: 'a', internal: 'yes' }))).toBe(
      'invalid request: internal: expected boolean, got "yes"',
    );
    expect(message(() => parseRequest(connectSchema, { network: 'n' }))).toBe(
      'invalid request: sandbox: required (expected string)',
    );
    expect(message(() => parseRequest(createNetworkSchema, { name: 'a', b: 1, c: 2 }))).toBe(
      'invalid request: unknown fields "b", "c"',
    );
    expect(message(() => parseRequest(createNetworkSchema, { name: 'x'.repeat(65) }))).toMatch(
      /^invalid request: name: expected string to have <=64 characters \(got "x{65}"\)$/,
    );
    expect(message(() => parseRequest(createNetworkSchema, { name: 'a', labels: { '': 'v' } }))).toBe(
      'invalid request: labels[""]: invalid key: expected string to have >=1 characters (got "")',
    );
    expect(
      message(() =>
        parseRequest(connectSchema, {
          network: 'n',
          sandbox: 's',
          portMappings: [{ hostPort: 80, hostPortEnd: 81, containerPort: 80 }],
        }),
      ),
    ).toBe('invalid request: portMappings[0]: host and container port ranges must have the same length');
  });

  it('formats paths like code', () => {
    expect(formatPath(['ipam', 'config', 0, 'subnet'])).toBe('ipam.config[0].subnet');
    expect(formatPath(['labels', 'a.b'])).toBe('labels["a.b"]');
    expect(formatPath([])).toBe('');
  });
});
