/**
 * Worker thread: deletes links by name in the namespace it was started in,
 * one request at a time, through src/kernel. Several of these let deletes
 * run at once, which one JavaScript thread cannot do: the kernel keeps the
 * sending thread inside sendmsg for a delete's whole RCU wait.
 *
 * Protocol: 'ready' once open; then for each { name } received, either
 * { name, at } (process.hrtime.bigint() when the ack came) or { name, error }.
 * 'stop' closes it.
 */
import { parentPort } from 'node:worker_threads';
import { linkDel, Netlink } from '../../src/kernel/index.js';

export type LinkDeleted = { name: string; at: bigint } | { name: string; error: string };

if (!parentPort) throw new Error('link-delete runs as a worker thread');
const parent = parentPort;
// Opened on this thread, which starts in the namespace of the thread that
// made the worker.
const h = Netlink.open();
parent.on('message', (message: { name: string } | 'stop') => {
  if (message === 'stop') {
    h.close();
    parent.close();
    return;
  }
  linkDel(h, message.name).then(
    () => parent.postMessage({ name: message.name, at: process.hrtime.bigint() } satisfies LinkDeleted),
    (err: unknown) => parent.postMessage({ name: message.name, error: String(err) } satisfies LinkDeleted),
  );
});
parent.postMessage('ready');
