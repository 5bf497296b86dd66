/**
 * Test-only crash injection (like CNI's debugPostIPAMError): when
 * NETCTL_CRASH_AT names this step, the process kills itself with SIGKILL,
 * exactly as a `kill -9` at that point would. The crash tests
 * (test/privileged/controller/crash.test.ts) name every step there is.
 */
export function crashPoint(step: string): void {
  if (process.env.NETCTL_CRASH_AT === step) process.kill(process.pid, 'SIGKILL');
}
