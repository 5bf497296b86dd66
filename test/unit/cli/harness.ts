/** Run netctl command lines in-process against a FakeApi, output captured. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { afterAll } from 'vitest';
import type { BackendOptions } from '../../../src/cli/backend.js';
import type { CliContext } from '../../../src/cli/context.js';
import { runCli } from '../../../src/cli/program.js';
import { FakeApi } from '../../../src/controller/testing/fake.js';
import { netnsStandIns } from '../../helpers/netns-stand-ins.js';

export const FAKE_EXEC = join(import.meta.dirname, 'fake-netctl-exec.sh');

// Sandbox run directories (the logs of `run -d`) of every harness in the file.
const runRoot = mkdtempSync(join(tmpdir(), 'netctl-cli-'));
let runs = 0;
afterAll(() => rmSync(runRoot, { recursive: true, force: true }));

class Capture extends Writable {
  text = '';
  override _write(chunk: Buffer, _encoding: BufferEncoding, done: () => void): void {
    this.text += chunk.toString();
    done();
  }
}

export interface Result {
  status: number;
  stdout: string;
  stderr: string;
  /** What each openApi call was given (the global options). */
  opened: BackendOptions[];
}

export interface Options extends Partial<CliContext> {
  input?: string;
}

/** Stand-ins for namespaces the CLI is given (`--netns`), shared by every harness. */
export const standIns = netnsStandIns();
afterAll(() => standIns.remove());

export function harness() {
  const api = new FakeApi({ checkKey: standIns.checkKey });
  const runDir = join(runRoot, String(runs++));
  async function netctl(argv: string[], options: Options = {}): Promise<Result> {
    const stdout = new Capture();
    const stderr = new Capture();
    const stdin = new PassThrough();
    stdin.end(options.input ?? '');
    const opened: BackendOptions[] = [];
    const status = await runCli(argv, {
      stdout,
      stderr,
      stdin,
      interactive: false,
      color: false,
      env: {},
      openApi: async (backendOptions) => {
        opened.push(backendOptions);
        return { api, close: async () => {}, mode: 'daemon' };
      },
      netctlExec: FAKE_EXEC,
      sandboxDir: (id) => join(runDir, id),
      inheritStdio: false,
      ...options,
    });
    return { status, stdout: stdout.text, stderr: stderr.text, opened };
  }
  return { api, netctl, runDir };
}
