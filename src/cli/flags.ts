/**
 * Flag value parsers: each checks its value with the core's own schema (or
 * parsePublish) the moment commander reads it, so bad input stops before
 * anything is called, with the flag named in the message.
 */
import { InvalidArgumentError } from 'commander';
import type { z } from 'zod';
import {
  cidrSchema,
  createNetworkSchema,
  ipSchema,
  nameSchema,
  parsePublish,
  portMappingSchema,
} from '../core/schemas.js';
import { describeIssues } from '../core/validate.js';

type Parser<T> = (value: string, previous: T) => T;

function check<S extends z.ZodType>(schema: S, value: unknown): z.output<S> {
  const result = schema.safeParse(value, { reportInput: true });
  if (!result.success) throw new InvalidArgumentError(describeIssues(result.error.issues));
  return result.data;
}

/** A repeatable flag: every occurrence appended, each parsed by one. */
export function repeatable<T>(one: (value: string) => T): Parser<T[]> {
  return (value, previous) => [...(previous ?? []), one(value)];
}

export const cidr = (value: string): string => check(cidrSchema, value);
export const ip = (value: string): string => check(ipSchema, value);
export const name = (value: string): string => check(nameSchema, value);
export const driver = (value: string): string => check(createNetworkSchema.shape.driver, value);

export function ipv4(value: string): string {
  const parsed = ip(value);
  if (parsed.includes(':')) throw new InvalidArgumentError(`${JSON.stringify(value)} is not an IPv4 address`);
  return parsed;
}

export function ipv6(value: string): string {
  const parsed = ip(value);
  if (!parsed.includes(':'))
    throw new InvalidArgumentError(`${JSON.stringify(value)} is not an IPv6 address`);
  return parsed;
}

/** `-p [ip:]hostPort[-end]:containerPort[-end][/proto]`. */
export function publish(value: string): z.output<typeof portMappingSchema> {
  let mapping: unknown;
  try {
    mapping = parsePublish(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
  return check(portMappingSchema, mapping);
}

/** `k=v`; with valueOptional, a bare `k` means an empty value (Docker's --label). */
export function keyValue(valueOptional: boolean): (value: string) => [string, string] {
  return (value) => {
    const eq = value.indexOf('=');
    if (eq === 0) throw new InvalidArgumentError(`${JSON.stringify(value)}: the key before = is empty`);
    if (eq < 0) {
      if (valueOptional) return [value, ''];
      throw new InvalidArgumentError(`${JSON.stringify(value)} is not key=value`);
    }
    return [value.slice(0, eq), value.slice(eq + 1)];
  };
}

/** `--aux-address name=ip`. */
export function auxAddress(value: string): [string, string] {
  const [key, address] = keyValue(false)(value);
  return [key, ip(address)];
}

export function positiveInt(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1)
    throw new InvalidArgumentError(`${JSON.stringify(value)} is not a positive integer`);
  return Number(value);
}

/** Pairs to a record; a key given twice keeps the last value, as Docker does. */
export function toRecord(pairs: [string, string][] | undefined): Record<string, string> {
  return Object.fromEntries(pairs ?? []);
}
