/**
 * An rtnetlink socket bound to one network namespace, over the `netlink`
 * package. Two things the package does not do are done here once:
 * - error replies are decoded to their errno (KernelError), never left as
 *   the package's "Request rejected: EEXIST" text, and named after the
 *   verb's operation and object (`cannot add address 10.0.0.1/24 to "br0"`);
 * - dumps flagged NLM_F_DUMP_INTR (the table changed mid-dump) are retried,
 *   as CNI's netlinksafe does;
 * - a dump has its socket to itself (see Netlink.request).
 */
import {
  AttrStream,
  createNetlink,
  Flags,
  FlagsGet,
  FlagsNew,
  type NetlinkMessage,
  type NetlinkSocket,
  MessageType as NlmsgType,
  parseError,
  type StreamData,
} from 'netlink';
import type { Family } from '../address.js';
import { hasErrorCode, KernelError } from './errors.js';
import { currentNetns, type Netns, type NetnsRef, openNetns, THIS_NETNS, withNetns } from './netns.js';

const NETLINK_ROUTE = 0;
// CNI's netlinksafe gives up after 5 interrupted dumps; do the same.
const DUMP_ATTEMPTS = 5;

/** Names of rtnetlink message types, for error messages. */
const RTM_NAMES: Record<number, string> = {
  16: 'RTM_NEWLINK',
  17: 'RTM_DELLINK',
  18: 'RTM_GETLINK',
  19: 'RTM_SETLINK',
  20: 'RTM_NEWADDR',
  21: 'RTM_DELADDR',
  22: 'RTM_GETADDR',
  24: 'RTM_NEWROUTE',
  25: 'RTM_DELROUTE',
  26: 'RTM_GETROUTE',
  28: 'RTM_NEWNEIGH',
  29: 'RTM_DELNEIGH',
  30: 'RTM_GETNEIGH',
};

/** Address families of rtnetlink headers (socket.h). */
export const AF_INET = 2;
export const AF_INET6 = 10;
export const AF_BRIDGE = 7;

export function addressFamily(family: Family): number {
  return family === 4 ? AF_INET : AF_INET6;
}

/** NLM_F_* combinations of the verbs: add (fails if present), replace, append. */
export const CREATE = FlagsNew.CREATE | FlagsNew.EXCL;
export const REPLACE = FlagsNew.CREATE | FlagsNew.REPLACE;
export const APPEND = FlagsNew.CREATE | FlagsNew.APPEND;

/** The payload of one rtnetlink message: a fixed header plus attributes. */
export type Payload = (out: AttrStream) => void;

/** Flatten netlink attribute data to one Buffer (for nested attributes). */
export function toBuffer(data: StreamData): Buffer {
  const out = new AttrStream();
  out.emit(data);
  return Buffer.concat(out.bufs);
}

/**
 * An rtnetlink handle in one namespace (vishvananda's netlink.Handle): every
 * kernel verb takes one. Close it when done; it pins its namespace.
 */
export class Netlink {
  /** Requests in flight other than dumps. */
  private readonly inFlight = new Set<Promise<unknown>>();
  /** The dump in flight, if any. */
  private dumping: Promise<unknown> | undefined;

  private constructor(
    private readonly socket: NetlinkSocket,
    /** The namespace this handle's socket lives in. */
    readonly netns: Netns,
  ) {}

  /** A handle in ns, or in the calling thread's namespace when ns is omitted. */
  static open(ns?: NetnsRef): Netlink {
    const netns = ns === undefined ? currentNetns() : typeof ns === 'string' ? openNetns(ns) : dup(ns);
    try {
      // A socket created while the thread is inside ns stays bound to ns.
      const socket = withNetns(netns, () => createNetlink(NETLINK_ROUTE));
      return new Netlink(socket, netns);
    } catch (err) {
      netns.close();
      throw err;
    }
  }

  close(): void {
    this.socket.close();
    this.netns.close();
  }

  /** Where this handle's objects are, for messages: ` in netns PATH`, or nothing in the thread's own. */
  get place(): string {
    return this.netns.path === THIS_NETNS ? '' : ` in netns ${this.netns.path}`;
  }

  /** The error of a failed `operation` (`add link "br0" (bridge)`), said with where it happened. */
  error(errno: number, syscall: string, operation: string | undefined): KernelError {
    return new KernelError(errno, syscall, operation ? { operation: `${operation}${this.place}` } : {});
  }

  /**
   * Send one request with NLM_F_ACK and return the reply messages (none for
   * a plain ACK). An error reply throws KernelError with its errno, its
   * message naming `operation` (the verb and its object) when given.
   */
  async request(type: number, payload: Payload, flags = 0, operation?: string): Promise<NetlinkMessage[]> {
    const out = new AttrStream();
    payload(out);
    const [messages] = await this.turn((flags & FlagsGet.DUMP) === FlagsGet.DUMP, () =>
      this.socket.request(type, out.bufs, { flags, checkError: false }),
    );
    for (const message of messages) {
      if (message.type === NlmsgType.ERROR) {
        const { errno } = parseError(message.data, message.flags);
        if (errno !== 0) throw this.error(errno, RTM_NAMES[type] ?? `rtnetlink(${type})`, operation);
      }
    }
    return messages.filter((m) => m.type !== NlmsgType.ERROR);
  }

  /**
   * Wait until this request may go on the socket, then send it. A dump
   * goes alone: the kernel runs one dump per socket at a time (EBUSY), and
   * answers other requests between a dump's datagrams, while the `netlink`
   * package groups a multipart reply from consecutive messages only — any
   * other reply in between ends it ("Multipart message not terminated
   * properly"). Other requests (single-message replies, matched by
   * sequence number) run side by side.
   */
  private async turn<T>(dump: boolean, send: () => Promise<T>): Promise<T> {
    // Re-check after every wait: the check and the send below run in one
    // synchronous step, so no request slips in between.
    for (;;) {
      if (this.dumping) await this.dumping.catch(() => undefined);
      else if (dump && this.inFlight.size) await Promise.allSettled([...this.inFlight]);
      else break;
    }
    const sent = send();
    if (dump) this.dumping = sent;
    else this.inFlight.add(sent);
    try {
      return await sent;
    } finally {
      if (this.dumping === sent) this.dumping = undefined;
      this.inFlight.delete(sent);
    }
  }

  /**
   * A delete request where "already absent" (the kernel's `absent` errno
   * code) is success: deletes are idempotent.
   */
  async remove(type: number, payload: Payload, absent: string, operation: string): Promise<void> {
    try {
      await this.request(type, payload, 0, operation);
    } catch (err) {
      if (!hasErrorCode(err, absent)) throw err;
    }
  }

  /** A dump request, retried while the kernel flags it as interrupted. */
  async dump<T>(type: number, payload: Payload, parse: (data: Buffer) => T, operation: string): Promise<T[]> {
    for (let attempt = 1; ; attempt++) {
      const messages = await this.request(type, payload, FlagsGet.DUMP, operation);
      if (!messages.some((m) => m.flags & Flags.DUMP_INTR)) return messages.map((m) => parse(m.data));
      if (attempt === DUMP_ATTEMPTS) {
        throw new Error(
          `cannot ${operation}${this.place}: the ${RTM_NAMES[type]} dump was still interrupted after ${DUMP_ATTEMPTS} attempts`,
        );
      }
    }
  }
}

// A handle owns its Netns, so a caller's handle is re-opened, not shared.
function dup(ns: Netns): Netns {
  return openNetns(`/proc/self/fd/${ns.fd}`);
}
