/**
 * Parse an external input with one of the schemas in ./schemas.ts and turn
 * a failure into the registry's NETCTL_INVALID_REQUEST, with a message that
 * names each bad field and says what was wrong in words a person can act on
 * (zod's own messages say "Invalid input" for a bad CIDR in a union).
 * Used by the REST API's validator, the CLI before it calls anything, and
 * the controller; one wording everywhere.
 */
import type { z } from 'zod';
import { Errors } from '../errors.js';
import { NAME_MAX, nameSchema } from './schemas.js';

// zod's issue type, as far as we read it (reportInput adds `input`).
interface Issue {
  code: string;
  path: PropertyKey[];
  message: string;
  input?: unknown;
  format?: string;
  pattern?: string;
  keys?: string[];
  expected?: string;
  errors?: Issue[][];
  issues?: Issue[];
}

// The pattern of nameSchema as zod reports it in an issue, so a bad name is
// worded as one wherever nameSchema is used (names, aliases).
const NAME_PATTERN = String(
  (nameSchema.def.checks ?? [])
    .map((check) => (check._zod.def as { pattern?: RegExp }).pattern)
    .find((pattern) => pattern !== undefined),
);

const FORMAT_WORDS: Record<string, string> = {
  cidrv4: 'CIDR',
  cidrv6: 'CIDR',
  ipv4: 'IPv4 address',
  ipv6: 'IPv6 address',
};

/** `ipam.config[0].subnet`, `labels[""]`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else if (typeof key === 'string' && /^[A-Za-z_$][\w$]*$/.test(key)) out += out ? `.${key}` : key;
    else out += `[${JSON.stringify(String(key))}]`;
  }
  return out;
}

function shown(input: unknown): string {
  const text = JSON.stringify(input);
  return text === undefined ? String(input) : text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function formatWord(issue: Issue): string | undefined {
  if (issue.code === 'invalid_format' && issue.format) return FORMAT_WORDS[issue.format];
  // ipSchema / cidrSchema are unions of the v4 and v6 formats.
  if (issue.code === 'invalid_union' && issue.errors?.length) {
    const words = new Set(issue.errors.flat().map((e) => formatWord(e)));
    if (words.size === 1) return [...words][0];
    if ([...words].every((w) => w?.endsWith('address'))) return 'IP address';
  }
  return undefined;
}

function describeIssue(issue: Issue): string {
  const word = formatWord(issue);
  if (word === 'CIDR')
    return `${shown(issue.input)} is not a valid CIDR (expected e.g. 10.1.0.0/24 or fd00::/64)`;
  if (word) return `${shown(issue.input)} is not a valid ${word}`;
  switch (issue.code) {
    case 'invalid_format':
      if (issue.format === 'regex' && issue.pattern === NAME_PATTERN)
        return `${shown(issue.input)} is not a valid name: names must match [a-zA-Z0-9][a-zA-Z0-9_.-]* (at most ${NAME_MAX} characters)`;
      if (issue.format === 'regex') return `${shown(issue.input)} must match ${issue.pattern}`;
      return `${shown(issue.input)} is not a valid ${issue.format}`;
    case 'unrecognized_keys':
      return `unknown field${issue.keys && issue.keys.length > 1 ? 's' : ''} ${(issue.keys ?? []).map((k) => JSON.stringify(k)).join(', ')}`;
    case 'invalid_type':
      return issue.input === undefined
        ? `required (expected ${issue.expected})`
        : `expected ${issue.expected}, got ${shown(issue.input)}`;
    case 'invalid_key':
      return `invalid key: ${(issue.issues ?? []).map(describeIssue).join(', ') || issue.message}`;
    case 'too_big':
    case 'too_small':
    case 'invalid_value':
      return `${issue.message.replace(/^Invalid input: /, '').replace(/^Too (big|small): /, '')}${
        issue.input !== undefined ? ` (got ${shown(issue.input)})` : ''
      }`;
    default:
      return issue.message;
  }
}

/** One line for all of a failed parse's issues: `field: what is wrong; ...`. */
export function describeIssues(issues: readonly z.core.$ZodIssue[]): string {
  return (issues as unknown as Issue[])
    .map((issue) => {
      const where = formatPath(issue.path);
      return where ? `${where}: ${describeIssue(issue)}` : describeIssue(issue);
    })
    .join('; ');
}

/** schema.parse, failing with NETCTL_INVALID_REQUEST. */
export function parseRequest<S extends z.ZodType>(schema: S, input: unknown): z.output<S> {
  const result = schema.safeParse(input, { reportInput: true });
  if (!result.success) throw new Errors.InvalidRequest(describeIssues(result.error.issues));
  return result.data;
}
