/**
 * The per-call arguments both of netctl's plugins read, by CONVENTIONS.md:
 * CNI_ARGS keys (pkg/types LoadArgs refuses unknown ones unless
 * IgnoreUnknown), and static addresses from runtimeConfig `ips`, else the
 * configuration's `args.cni.ips`, else CNI_ARGS `IP=`; and, by SPEC.md
 * "GC", the attachments a GC keeps.
 */
import type { z } from 'zod';
import { ipSchema } from '../core/schemas.js';
import { CniCode, CniError } from './skel.js';
import { type baseConfigSchema, ignoresUnknownArgs } from './types.js';

type BaseConfig = z.output<typeof baseConfigSchema>;

/** Refuse a CNI_ARGS key outside known, unless IgnoreUnknown is set. */
export function checkCniArgs(args: Map<string, string>, known: ReadonlySet<string>): void {
  if (ignoresUnknownArgs(args)) return;
  for (const [key, value] of args) {
    if (!known.has(key))
      throw new CniError(
        CniCode.UNSUPPORTED_FIELD,
        `unsupported CNI_ARGS key ${key}=${value}`,
        'set IgnoreUnknown=1 to ignore it',
      );
  }
}

/** The static addresses asked for, as given (with or without a prefix length), by the first source that has any. */
export function requestedIps(
  conf: Pick<BaseConfig, 'runtimeConfig' | 'args'>,
  args: Map<string, string>,
): string[] {
  if (conf.runtimeConfig?.ips?.length) return conf.runtimeConfig.ips;
  if (conf.args?.cni?.ips?.length) return conf.args.cni.ips;
  return args.get('IP')?.split(',').filter(Boolean) ?? [];
}

/** One requested address without its prefix length; not an address is a configuration error. */
export function staticIp(text: string): string {
  const ip = text.includes('/') ? text.slice(0, text.indexOf('/')) : text;
  if (!ipSchema.safeParse(ip).success)
    throw new CniError(CniCode.INVALID_CONFIG, `invalid static address ${JSON.stringify(text)}`);
  return ip;
}

/** GC's list of the attachments to keep (SPEC.md "GC"): required, since without it GC would remove everything. */
export function validAttachments(
  conf: Pick<BaseConfig, 'cni.dev/valid-attachments'>,
): { containerID: string; ifname: string }[] {
  const valid = conf['cni.dev/valid-attachments'];
  if (!valid) throw new CniError(CniCode.INVALID_CONFIG, 'cni.dev/valid-attachments missing');
  return valid;
}
