/**
 * The verbs every kind of object has (networks, sandboxes), shaped as
 * docker's: `ls`, `inspect` and `rm`.
 */
import type { Command } from 'commander';
import type { NetctlApi } from '../controller/api.js';
import { type Cli, formatOption, shortId, verb } from './cli.js';
import type { Format } from './output.js';

/** A listing's table: its headers after the id's, and an object's row after its id. */
export interface Listing<T> {
  description: string;
  list(api: NetctlApi): Promise<T[]>;
  /** The id column's header, e.g. `NETWORK ID`, and the rest. */
  headers: string[];
  row(item: T): string[];
}

/**
 * `ls` (alias `list`): sorted by name, a table with the short id first;
 * `-q` ids only, `--no-trunc` full ids, `--format json` the records.
 */
export function listVerb<T extends { id: string; name: string }>(
  cli: Cli,
  parent: Command,
  listing: Listing<T>,
): Command {
  return verb(parent, 'ls')
    .alias('list')
    .description(listing.description)
    .option('-q, --quiet', 'print ids only')
    .option('--no-trunc', 'print full ids')
    .addOption(formatOption())
    .action(async (options: { quiet?: boolean; trunc: boolean; format: Format }, command: Command) => {
      const items = await cli.withApi(command, (api) => listing.list(api));
      items.sort((a, b) => a.name.localeCompare(b.name));
      const id = (item: T) => shortId(item.id, !options.trunc);
      if (options.format === 'json') cli.out.json(items);
      else if (options.quiet) for (const item of items) cli.out.line(id(item));
      else
        cli.out.table(
          listing.headers,
          items.map((item) => [id(item), ...listing.row(item)]),
        );
    });
}

/** `inspect REF...`: each object's details as JSON, failures reported one by one. */
export function inspectVerb<T>(
  cli: Cli,
  parent: Command,
  spec: {
    description: string;
    what: string;
    inspect(api: NetctlApi, ref: string): Promise<T>;
    show(details: T): unknown;
  },
): Command {
  return verb(parent, 'inspect')
    .description(spec.description)
    .argument(`<${spec.what}...>`, `${spec.what} names or ids`)
    .action(async (refs: string[], _options: unknown, command: Command) => {
      const details = await cli.withApi(command, (api) => cli.each(refs, (ref) => spec.inspect(api, ref)));
      cli.out.json(details.map((d) => spec.show(d)));
    });
}

/** `rm REF...` (alias `remove`): each removed and its ref printed, failures reported one by one. */
export function removeVerb(
  cli: Cli,
  parent: Command,
  spec: { description: string; what: string; remove(api: NetctlApi, ref: string): Promise<unknown> },
): Command {
  return verb(parent, 'rm')
    .alias('remove')
    .description(spec.description)
    .argument(`<${spec.what}...>`, `${spec.what} names or ids`)
    .action(async (refs: string[], _options: unknown, command: Command) => {
      await cli.withApi(command, (api) =>
        cli.each(refs, async (ref) => {
          await spec.remove(api, ref);
          cli.out.line(ref);
        }),
      );
    });
}
