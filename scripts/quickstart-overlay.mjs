// The quickstart's second act: Redis and two simulated hosts on this
// machine (a netns each, with its own daemon: bench/lib/cluster.ts), an
// overlay network, a sandbox on each host, a ping across, and what netctl
// programmed in the kernel. Runs inside scripts/isolate.sh's namespace.
import { startCluster } from '../dist/bench/lib/cluster.js';

const show = (title, command) => process.stdout.write(`\n== ${title}\n$ ${command}\n`);
const cluster = await startCluster({ hosts: 2 });
try {
  const [h1, h2] = cluster.hosts;
  console.log(
    `\n== two hosts on one Redis (${cluster.redis.url}): ${h1.name} ${h1.address}, ${h2.name} ${h2.address}`,
  );
  const run = async (host, args) => {
    show(`on ${host.name}`, `netctl ${args.join(' ')}`);
    const { stdout, stderr, code } = await host.cli(args);
    process.stdout.write(stdout + stderr);
    if (code !== 0) throw new Error(`netctl ${args.join(' ')} failed on ${host.name}`);
    return stdout;
  };
  await run(h1, ['host', 'ls']);
  await run(h1, ['network', 'create', '-d', 'overlay', '--subnet', '10.50.0.0/24', 'web']);
  const a = h1.sandboxName('a');
  const b = h2.sandboxName('b');
  await run(h1, ['sandbox', 'create', a]);
  await run(h1, ['network', 'connect', 'web', a]);
  await run(h2, ['sandbox', 'create', b]);
  await run(h2, ['network', 'connect', 'web', b]);
  const target = (await h1.api.inspectSandbox(a)).endpoints[0].ipv4.split('/')[0];
  const from = (await h2.api.inspectSandbox(b)).sandbox.key;
  show(`from ${b} on ${h2.name} to ${a} on ${h1.name}, across the VXLAN`, `ping -c 2 ${target}`);
  process.stdout.write(await h2.exec('nsenter', [`--net=${from}`, 'busybox', 'ping', '-c', '2', target]));
  const vx = `vx-${(await h1.api.inspectNetwork('web')).network.id.slice(0, 12)}`;
  show(`${h1.name}: the VXLAN device`, `ip -d link show ${vx}`);
  process.stdout.write(await h1.exec('ip', ['-d', 'link', 'show', vx]));
  show(`${h1.name}: the static FDB entry for ${b} (no learning, no flooding)`, `bridge fdb show dev ${vx}`);
  process.stdout.write(await h1.exec('bridge', ['fdb', 'show', 'dev', vx]));
  show(`${h1.name}: the neighbour entry the device's ARP proxy answers from`, `ip neigh show dev ${vx}`);
  process.stdout.write(await h1.exec('ip', ['neigh', 'show', 'dev', vx]));
  await run(h2, ['sandbox', 'rm', b]);
  await run(h1, ['sandbox', 'rm', a]);
  await run(h1, ['network', 'rm', 'web']);
} finally {
  await cluster.close();
}
