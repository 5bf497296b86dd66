/** Readable result tables (cli-table3), printed before a benchmark's JSON line. */
import Table from 'cli-table3';

export type Cell = string | number;

export interface TableSpec {
  title: string;
  head: string[];
  rows: Cell[][];
  /** Lines printed under the table (notes, units, targets). */
  notes?: string[];
}

/** A number with a fixed count of decimals, for table cells. */
export function fixed(value: number, decimals = 2): string {
  return value.toFixed(decimals);
}

/** A ratio ours/ref as "0.031×". */
export function times(ratio: number): string {
  return `${ratio < 0.1 ? ratio.toFixed(3) : ratio.toFixed(2)}×`;
}

export function renderTable(spec: TableSpec): string {
  // No colours: the output is read in CI logs and diffed between runs.
  const table = new Table({
    head: spec.head,
    style: { head: [], border: [] },
    colAligns: spec.head.map((_, i) => (i === 0 ? 'left' : 'right')),
  });
  for (const row of spec.rows) table.push(row);
  return [spec.title, table.toString(), ...(spec.notes ?? [])].join('\n');
}

export function printTable(spec: TableSpec): void {
  process.stdout.write(`${renderTable(spec)}\n\n`);
}
