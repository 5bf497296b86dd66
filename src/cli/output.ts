/** How the CLI prints: tables for people, JSON for programs. */
import type { Writable } from 'node:stream';
import Table from 'cli-table3';
import pc from 'picocolors';

export const FORMATS = ['table', 'json'] as const;
export type Format = (typeof FORMATS)[number];

export type Status = 'ok' | 'warn' | 'fail';

export class Output {
  private readonly colors: ReturnType<typeof pc.createColors>;

  constructor(
    readonly out: Writable,
    color: boolean,
  ) {
    this.colors = pc.createColors(color);
  }

  line(text: string): void {
    this.out.write(`${text}\n`);
  }

  json(value: unknown): void {
    this.out.write(`${JSON.stringify(value, null, 2)}\n`);
  }

  table(head: string[], rows: string[][]): void {
    const table = new Table({
      head: head.map((h) => this.colors.bold(h)),
      style: { head: [], border: [] },
      // No rule between rows: compact, like `docker network ls`.
      chars: { mid: '', 'left-mid': '', 'mid-mid': '', 'right-mid': '' },
    });
    table.push(...rows);
    this.out.write(`${table.toString()}\n`);
  }

  status(status: Status): string {
    const paint = { ok: this.colors.green, warn: this.colors.yellow, fail: this.colors.red }[status];
    return paint(status);
  }
}
