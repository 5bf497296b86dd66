/**
 * The CNI plugins in a process of their own: `node dist/src/cni/main.js
 * [netctl-cni|netctl-ipam]`, configuration on stdin, CNI_* in the
 * environment, result or error on stdout, the exit status from dispatch.
 *
 * The netctl-cni shim (native/cni/netctl-cni.c) runs this when no daemon
 * answers on its socket: same code, same store (the embedded one under
 * $NETCTL_STATE_DIR, or $NETCTL_KV), just ~150 ms of Node start-up slower.
 * Concurrent calls from many processes are safe: every write is a CAS
 * transaction on the store, and intents keep gc off work in flight.
 */
import type { Composed } from '../daemon/compose.js';
import type { openIpam } from '../daemon/ipam.js';
import { type CniBackend, isPluginName, PLUGIN_NAMES, runPlugin } from './plugins.js';
import { MAX_CONFIG_BYTES } from './skel.js';

/** stdin, up to one byte past the limit: enough for dispatch to refuse it, never all of a flood. */
async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of process.stdin) {
    chunks.push(chunk as Buffer);
    length += (chunk as Buffer).length;
    if (length > MAX_CONFIG_BYTES) break;
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** The controller, or the IPAM alone (netctl-ipam), composed on first use and closed at the end. */
function localBackend(): CniBackend & { close(): Promise<void> } {
  const url = process.env.NETCTL_KV || undefined;
  let local: Promise<Composed> | undefined;
  let ipamOnly: ReturnType<typeof openIpam> | undefined;
  const openLocal = () =>
    (local ??= import('../daemon/compose.js').then((m) => m.createLocalApi(url ? { kv: url } : {})));
  return {
    api: async () => (await openLocal()).api,
    async ipam() {
      // netctl-ipam needs the store only: no netlink, no firewall.
      if (local) return (await local).ipam;
      ipamOnly ??= import('../daemon/ipam.js').then((m) => m.openIpam(url));
      return (await ipamOnly).ipam;
    },
    async close() {
      // A store that never opened was reported by the verb already (its CNI error): nothing to close.
      const opened = await Promise.allSettled([local, ipamOnly]);
      for (const o of opened) if (o.status === 'fulfilled' && o.value) await o.value.close();
    },
  };
}

const name = process.argv[2] ?? 'netctl-cni';
if (!isPluginName(name)) {
  process.stderr.write(`netctl cni: unknown plugin ${name} (expected ${PLUGIN_NAMES.join(' or ')})\n`);
  process.exit(1);
}
const backend = localBackend();
let output = '';
const status = await runPlugin(
  name,
  {
    getenv: (variable) => process.env[variable],
    readStdin,
    stdout: (text) => {
      output += text;
    },
    stderr: (text) => process.stderr.write(text),
  },
  backend,
);
try {
  await backend.close();
} finally {
  // Written once, whole, after the work: a runtime reads stdout to its end.
  process.stdout.write(output);
  process.exitCode = status;
}
