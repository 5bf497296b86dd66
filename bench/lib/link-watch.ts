/**
 * Worker thread: reports when links disappear, as the kernel announces it
 * (RTM_DELLINK on the RTNLGRP_LINK multicast group of the namespace the
 * thread was started in).
 *
 * It has to be another thread: the thread that sends a DELLINK is kept in
 * sendmsg until the kernel's cleanup after the unregister (an RCU grace
 * period) is over, long after the link itself is gone.
 *
 * Messages to the parent: 'ready' once subscribed, then { name, at } per
 * deleted link, `at` being process.hrtime.bigint() (one clock per process).
 */
import { parentPort } from 'node:worker_threads';
import { createNetlink, rt } from 'netlink';

export interface LinkGone {
  name: string;
  at: bigint;
}

const NETLINK_ROUTE = 0;
// rtnetlink.h: enum rtnetlink_groups.
const RTNLGRP_LINK = 1;

if (!parentPort) throw new Error('link-watch runs as a worker thread');
const parent = parentPort;
const socket = createNetlink(NETLINK_ROUTE);
socket.addMembership(RTNLGRP_LINK);
// Keep the thread alive while it waits for notifications.
socket.ref(true);
socket.on('message', (messages) => {
  const at = process.hrtime.bigint();
  for (const message of messages) {
    if (message.type !== rt.MessageType.DELLINK) continue;
    const name = rt.parseLinkMessage(message.data).attrs.ifname;
    if (name) parent.postMessage({ name, at } satisfies LinkGone);
  }
});
parent.on('message', (message) => {
  if (message === 'stop') {
    socket.close();
    parent.close();
  }
});
parent.postMessage('ready');
