/**
 * Benchmark runner: `npm run bench -- NAME [NAME...] [--iterations N]`.
 *
 * Each NAME is a module bench/NAME.ts whose default export runs the
 * benchmark, prints its readable tables, and returns its figures; the runner
 * then prints them as one JSON line, `{"bench":"NAME",...}`, the last line of
 * that benchmark's output. With no NAME it lists the benchmarks.
 *
 * Benchmarks create links, addresses and namespaces, so they run only inside
 * the private network + mount namespace of scripts/isolate.sh (which
 * `npm run bench` goes through), never in the host's.
 */
import { readdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isolationProblem } from '../src/isolation.js';
import type { Figures } from './lib/figures.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const NAME = /^[a-z][a-z0-9-]*$/;

interface BenchModule {
  default?: unknown;
  description?: unknown;
}

/** Benchmark names: the compiled modules beside this one. */
function available(): string[] {
  return readdirSync(HERE)
    .filter((file) => file.endsWith('.js') && file !== 'main.js')
    .map((file) => file.slice(0, -'.js'.length))
    .filter((name) => NAME.test(name))
    .sort();
}

function load(name: string): Promise<BenchModule> {
  // name was checked against available(): never a path of the caller's choosing.
  return import(new URL(`./${name}.js`, import.meta.url).href) as Promise<BenchModule>;
}

interface Args {
  names: string[];
  iterations: string | undefined;
  help: boolean;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { names: [], iterations: undefined, help: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--iterations') {
      args.iterations = argv[++i];
      if (args.iterations === undefined) throw new UsageError('--iterations needs a value');
    } else if (arg.startsWith('--iterations=')) {
      args.iterations = arg.slice('--iterations='.length);
    } else if (arg === '-h' || arg === '--help') {
      args.help = true;
    } else if (arg.startsWith('-')) {
      throw new UsageError(`unknown option ${arg}`);
    } else {
      args.names.push(arg);
    }
  }
  if (args.iterations !== undefined && !/^[1-9][0-9]*$/.test(args.iterations)) {
    throw new UsageError(`--iterations must be a positive integer, got ${JSON.stringify(args.iterations)}`);
  }
  return args;
}

class UsageError extends Error {}

async function list(): Promise<void> {
  const names = available();
  process.stdout.write('usage: npm run bench -- NAME [NAME...] [--iterations N]\n\nbenchmarks:\n');
  for (const name of names) {
    const { description } = await load(name);
    process.stdout.write(`  ${name.padEnd(12)} ${typeof description === 'string' ? description : ''}\n`);
  }
}

async function runBench(name: string): Promise<void> {
  const module = await load(name);
  if (typeof module.default !== 'function') throw new Error(`bench/${name} has no default export function`);
  const { bench: _ignored, ...figures } = (await (module.default as () => Promise<Figures>)()) ?? {};
  process.stdout.write(`${JSON.stringify({ bench: name, ...figures })}\n`);
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  if (args.help || args.names.length === 0) {
    await list();
    return 0;
  }
  const known = available();
  const unknown = args.names.filter((name) => !known.includes(name));
  if (unknown.length) {
    throw new UsageError(`unknown benchmark ${unknown.join(', ')} (available: ${known.join(', ')})`);
  }
  const problem = isolationProblem();
  if (problem) {
    process.stderr.write(
      `netctl bench: refusing to run outside the private namespace of scripts/isolate.sh (${problem}).\n` +
        'Benchmarks create links and namespaces; run them with `npm run bench -- NAME` (as root).\n',
    );
    return 77;
  }
  if (args.iterations !== undefined) process.env.BENCH_ITERATIONS = args.iterations;
  for (const name of args.names) await runBench(name);
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof UsageError) {
      process.stderr.write(`netctl bench: ${err.message}\n`);
      process.exitCode = 2;
    } else {
      process.stderr.write(
        `netctl bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
      );
      process.exitCode = 1;
    }
  },
);
