/** How the CLI prints: tables for people, JSON for programs. */
import Table from 'cli-table3';
import pc from 'picocolors';

export const FORMATS = ['table', 'json'] as const;
export type Format = (typeof FORMATS)[number];

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function printTable(head: string[], rows: string[][]): void {
  const table = new Table({
    head: head.map((h) => pc.bold(h)),
    style: { head: [], border: [] },
    // No rule between rows: compact, like `docker network ls`.
    chars: { mid: '', 'left-mid': '', 'mid-mid': '', 'right-mid': '' },
  });
  table.push(...rows);
  process.stdout.write(`${table.toString()}\n`);
}

const STATUS_COLORS = { ok: pc.green, warn: pc.yellow, fail: pc.red } as const;

export function colorStatus(status: keyof typeof STATUS_COLORS): string {
  return STATUS_COLORS[status](status);
}
