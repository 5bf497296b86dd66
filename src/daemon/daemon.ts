/**
 * `netctl daemon`: one controller (compose.ts) served on the REST API
 * socket, to the CNI shim through it, and to dockerd on the plugin sockets
 * (docs/docker.md), until SIGTERM/SIGINT. It reconciles first (gc), so
 * what changed while it was down is repaired before it answers. Networks
 * stay in place when it stops; the next start picks them up.
 */
import { recordDaemonStore } from '../kv/index.js';
import { log } from '../log.js';
import { buildApiServer } from '../server/api.js';
import { listenDockerPlugins } from '../server/docker/server.js';
import { listenUnix } from '../server/listen.js';
import type { ClusterFlags } from './cluster-flags.js';
import { createLocalApi } from './compose.js';

export interface DaemonOptions {
  /** The REST API socket. */
  socket: string;
  /** Store URL (`--kv`); the embedded store when absent. */
  kv?: string | undefined;
  /** Docker's plugin directory to serve the plugins in, or false for none. */
  dockerPlugins: string | false;
  /** On a shared store: this host's place in the cluster. */
  cluster?: ClusterFlags;
}

/** Serve until a signal; resolves once everything is closed. */
export async function runDaemon(options: DaemonOptions): Promise<void> {
  const { api, ipam, close } = await createLocalApi({
    daemon: true,
    ...(options.kv ? { kv: options.kv } : {}),
    ...(options.cluster ? { cluster: options.cluster } : {}),
  });
  try {
    const report = await api.gc({ dryRun: false });
    for (const action of report.actions) log.info({ action }, 'reconcile');
    // After the gc put the devices back: the peers are programmed on them.
    await api.startCluster();
    // CNI calls forwarded by the netctl-cni shim run against this same controller (docs/cni.md).
    const app = buildApiServer(api, { cni: { api: async () => api, ipam: async () => ipam } });
    await listenUnix(app, options.socket);
    // The host's store, for the CLI's and the CNI plugin's fallbacks while no daemon answers.
    recordDaemonStore(options.kv);
    let plugins: Awaited<ReturnType<typeof listenDockerPlugins>> | undefined;
    try {
      if (options.dockerPlugins) plugins = await listenDockerPlugins(api, options.dockerPlugins);
      log.info(
        { socket: options.socket, dockerPlugins: plugins?.sockets ?? [], store: (await api.health()).store },
        'netctl daemon ready',
      );
      const signal = await new Promise<NodeJS.Signals>((resolve) => {
        process.once('SIGTERM', resolve);
        process.once('SIGINT', resolve);
      });
      log.info({ signal }, 'shutting down; networks stay in place');
    } finally {
      await plugins?.close();
      await app.close();
    }
  } finally {
    await close();
  }
}
