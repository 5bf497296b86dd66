/**
 * What the NetctlApi contract's parts share: the api under test (a fresh
 * one per test), how a refusal is read (registry code, class, message),
 * and what a user can list (to see that a refusal changed nothing).
 */
import { afterEach, beforeEach, expect } from 'vitest';
import type { NetctlApi } from '../../../../src/controller/api.js';
import { type ErrorClass, specOf } from '../../../../src/errors.js';

export interface ApiUnderTest {
  api: NetctlApi;
  /** The path of a network namespace to give as a sandbox key (made on first use, gone after the test). */
  netns(name: string): string;
  close(): Promise<void>;
}

export type ApiSetup = () => Promise<ApiUnderTest>;

export interface Refusal {
  code: string;
  class: ErrorClass;
  message: string;
}

/** How a call was refused, as the registry reports it (a lower layer's error by the code it means). */
export async function refusal(call: Promise<unknown>): Promise<Refusal> {
  const err = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, 'the call was refused').toBeInstanceOf(Error);
  const spec = specOf(err);
  expect(spec, `a registry error, not ${String(err)}`).toBeDefined();
  return { code: spec?.code ?? '', class: spec?.class ?? 'internal', message: (err as Error).message };
}

/** What a user can list: every network and sandbox, with their endpoints' addresses. */
export async function listing(api: NetctlApi) {
  const networks = await api.listNetworks();
  const sandboxes = await api.listSandboxes();
  return {
    networks: networks
      .map((n) => `${n.name} ${n.driver} ${n.ipam.config.map((c) => c.subnet).join(',')}`)
      .sort(),
    sandboxes: (
      await Promise.all(
        sandboxes.map(async (s) => {
          const { endpoints } = await api.inspectSandbox(s.id);
          return `${s.name} ${endpoints.map((e) => `${e.networkName}=${e.ipv4 ?? '-'}`).join(',')}`;
        }),
      )
    ).sort(),
  };
}

/** Every test gets a fresh api; `t` is it. */
export type Api = { readonly t: ApiUnderTest };

export function useApi(setup: ApiSetup): Api {
  let current: ApiUnderTest | undefined;
  beforeEach(async () => {
    current = await setup();
  });
  afterEach(async () => {
    await current?.close();
    current = undefined;
  });
  return {
    get t() {
      if (!current) throw new Error('setup failed');
      return current;
    },
  };
}

export const NAME_RULE = 'names must match [a-zA-Z0-9][a-zA-Z0-9_.-]* (at most 64 characters)';

/** A bridge network on 10.1.0.0/24. */
export const web = { name: 'web', ipam: { config: [{ subnet: '10.1.0.0/24' }] } };

/** A sandbox on a namespace of its own name, given by key. */
export const box = (s: Api, name = 'box') => ({ name, key: s.t.netns(name) });
