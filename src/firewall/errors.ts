/**
 * Typed errors of src/firewall. Callers branch on the class or `code`, never
 * on the message text.
 */

/**
 * An input to a rule builder or a Rule itself is malformed: an interface
 * name, CIDR, port, owner or spec token that must never reach an
 * iptables-restore line. Nothing is produced when this is thrown.
 */
export class FirewallInputError extends Error {
  override readonly name = 'FirewallInputError';
  readonly code = 'EINVAL';
  constructor(
    /** Which input was wrong, e.g. "bridge", "mappings[0].hostPort". */
    readonly field: string,
    readonly value: unknown,
    reason: string,
  ) {
    super(`invalid ${field} ${JSON.stringify(value)}: ${reason}`);
  }
}

/**
 * iptables-save/iptables-restore (or ip6tables-*) failed. For a restore,
 * `line` is the line of the input iptables reported ("line N failed"), so the
 * message shows the rule the kernel or iptables refused.
 */
export class FirewallCommandError extends Error {
  override readonly name = 'FirewallCommandError';
  readonly code = 'EFIREWALL';
  constructor(
    readonly command: string,
    readonly args: readonly string[],
    /** Exit status, or null when the process could not start or was killed. */
    readonly exitCode: number | null,
    readonly stderr: string,
    readonly line?: string,
  ) {
    const what = [command, ...args].join(' ');
    const why = stderr.trim() || (exitCode === null ? 'did not run' : `exit status ${exitCode}`);
    super(`${what}: ${why}${line ? ` (input line: ${line})` : ''}`);
  }
}

/** A rule refers to a chain netctl does not own and that does not exist (e.g. DOCKER-USER). */
export class FirewallChainMissingError extends Error {
  override readonly name = 'FirewallChainMissingError';
  readonly code = 'ENOENT';
  constructor(
    readonly family: 4 | 6,
    readonly table: string,
    readonly chain: string,
  ) {
    super(`chain ${chain} does not exist in the IPv${family} ${table} table`);
  }
}
