import { getSystemErrorMap, getSystemErrorName } from 'node:util';

/**
 * A failed syscall or rtnetlink request, shaped like Node's own errors
 * (`errno` negative, `code` such as "EEXIST") so callers branch on the code,
 * never on the message text. The message names what was being done to
 * which object, as CNI's plugins wrap theirs (`could not add %q: %v`):
 * `cannot add link "br0" (bridge): EEXIST (file already exists)`.
 */
export class KernelError extends Error {
  override readonly name = 'KernelError';
  readonly errno: number;
  readonly code: string;
  /** The syscall or rtnetlink message that failed: "mount", "RTM_NEWLINK". */
  readonly syscall: string;
  readonly path: string | undefined;
  /** The operation and its object, as the message says it: `add link "br0" (bridge)`. */
  readonly operation: string | undefined;

  constructor(errno: number, syscall: string, where: { path?: string; operation?: string } = {}) {
    const code = errnoName(errno);
    const text = LINUX_ONLY[errno]?.[1] ?? getSystemErrorMap().get(errno)?.[1] ?? 'unknown error';
    const { path, operation } = where;
    super(`${operation ? `cannot ${operation}` : `${syscall}${path ? ` ${path}` : ''}`}: ${code} (${text})`);
    this.errno = errno;
    this.code = code;
    this.syscall = syscall;
    this.path = path;
    this.operation = operation;
  }
}

/**
 * Linux errnos that libuv (so Node) has no name for, but netlink answers
 * and callers branch on. EXFULL: a bridge with all 1,023 ports taken.
 */
const LINUX_ONLY: Record<number, [code: string, text: string]> = {
  [-54]: ['EXFULL', 'exchange full'],
};

function errnoName(errno: number): string {
  const known = LINUX_ONLY[errno]?.[0];
  if (known) return known;
  try {
    return getSystemErrorName(errno);
  } catch {
    // getSystemErrorName throws for numbers that are not errnos at all.
    return `E${-errno}`;
  }
}

/**
 * A link as messages name it: `"br0"` by name, `#12` by index (a link value
 * read from the kernel goes by its name).
 */
export function linkLabel(link: string | number | { index: number; name?: string }): string {
  if (typeof link === 'string') return JSON.stringify(link);
  if (typeof link === 'number') return `#${link}`;
  return typeof link.name === 'string' ? JSON.stringify(link.name) : `#${link.index}`;
}

/** The link named or numbered does not exist in the namespace asked. */
export class LinkNotFoundError extends Error {
  override readonly name = 'LinkNotFoundError';
  readonly code = 'ENODEV';
  constructor(readonly link: string | number) {
    super(`link ${linkLabel(link)} not found`);
  }
}

/** No namespace file at the path (already deleted, or a typo). */
export class NetnsNotFoundError extends Error {
  override readonly name = 'NetnsNotFoundError';
  readonly code = 'ENOENT';
  constructor(readonly path: string) {
    super(`network namespace ${path} not found`);
  }
}

/** The path exists but is not a network namespace (a plain file, a mount ns, a FIFO, ...). */
export class NotANetnsError extends Error {
  override readonly name = 'NotANetnsError';
  readonly code = 'ENOTNETNS';
  constructor(
    readonly path: string,
    /** What it is instead, when known: `a FIFO`, `a character device`. */
    readonly found?: string,
  ) {
    super(`${path} is not a network namespace${found ? ` (${found})` : ''}`);
  }
}

/** A namespace no request may name: netctl's own, or the host's. */
export class ProtectedNetnsError extends Error {
  override readonly name = 'ProtectedNetnsError';
  readonly code = 'ENETNSPROTECTED';
  constructor(
    readonly path: string,
    /** Which one it is: `the host's network namespace`. */
    readonly what: string,
  ) {
    super(`${path} is ${what}`);
  }
}

/** Any of the reasons a netns path from outside is refused. */
export function isUnusableNetns(
  err: unknown,
): err is NetnsNotFoundError | NotANetnsError | ProtectedNetnsError {
  return (
    err instanceof NetnsNotFoundError || err instanceof NotANetnsError || err instanceof ProtectedNetnsError
  );
}

/** True when err is a Node-shaped error (ours or Node's) with this errno code. */
export function hasErrorCode(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code;
}

/** A link of that name exists but is of another kind than asked. */
export class LinkKindMismatchError extends Error {
  override readonly name = 'LinkKindMismatchError';
  readonly code = 'EEXIST';
  constructor(
    readonly link: string,
    readonly expected: string,
    readonly actual: string,
  ) {
    super(`${JSON.stringify(link)} already exists but is not a ${expected} (it is a ${actual})`);
  }
}
