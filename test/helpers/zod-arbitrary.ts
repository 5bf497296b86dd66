/**
 * fast-check arbitraries generated from zod schemas, so a fuzzer follows
 * the very schemas the entry points parse with and never drifts from them.
 * zod 4 exports a schema's shape as JSON Schema (`z.toJSONSchema`, the
 * *input* side: defaults make a field optional, transforms are seen from
 * their input); this walks that JSON Schema: objects with their required and
 * optional properties, records, arrays, strings by format (ipv4, cidrv6,
 * ...) or pattern, bounded numbers, enums, constants and unions.
 *
 * What JSON Schema cannot say (a zod `.refine`, a cross-field rule) is not
 * followed, so a generated value is usually, not always, valid: callers
 * that need to know ask the zod schema itself (`schema.safeParse`).
 *
 * Domain values can be mixed in by property name (`keys`: the names of the
 * networks that exist, say) or by string format, so the fuzzer reaches past
 * "not found" into the code behind it.
 */
import fc from 'fast-check';
import { z } from 'zod';

type Node = { [key: string]: unknown };

export interface ZodArbitraryOptions {
  /** Values for a property of this name wherever it appears, mixed 3:1 with the schema's own. */
  keys?: Record<string, fc.Arbitrary<unknown>>;
  /**
   * Values for the property at this path (`ipam.driver`, `ipam.config[].subnet`), mixed 3:1 with
   * the schema's own; a path wins over a name.
   */
  paths?: Record<string, fc.Arbitrary<unknown>>;
  /** Strings of a JSON Schema format (ipv4, ipv6, cidrv4, cidrv6, ...), mixed 3:1 with the built-in ones. */
  formats?: Record<string, fc.Arbitrary<string>>;
  /** The most items of a generated array or record (default 3): schemas allow hundreds, a fuzzer needs few. */
  maxItems?: number;
  /** How often an optional property is there (default 0.5): less makes more of the values valid. */
  presence?: number;
  /** Sometimes add a property the schema does not name to objects that allow it (default true). */
  extraKeys?: boolean;
}

/** Values of the schema's input type, as JSON (what a client would send). */
export function zodArbitrary(schema: z.ZodType, options: ZodArbitraryOptions = {}): fc.Arbitrary<unknown> {
  const root = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as Node;
  return new Walker(root, options).arbitrary(root, []);
}

/** Any JSON value, small: where a schema says "anything" (z.unknown(), a loose object's extra keys). */
export const anyJson = (): fc.Arbitrary<unknown> => fc.jsonValue({ maxDepth: 2, depthSize: 'small' });

const cidr = (ip: fc.Arbitrary<string>, bits: number) =>
  fc.tuple(ip, fc.integer({ min: 0, max: bits })).map(([a, p]) => `${a}/${p}`);

/** Built-in generators for the formats zod writes into JSON Schema. */
const FORMATS: Record<string, () => fc.Arbitrary<string>> = {
  ipv4: () => fc.ipV4(),
  ipv6: () => fc.ipV6(),
  cidrv4: () => cidr(fc.ipV4(), 32),
  cidrv6: () => cidr(fc.ipV6(), 128),
};

/**
 * Strings matching a pattern. fast-check cannot generate from lookaheads:
 * those are dropped for the generation and checked by the caller's filter.
 */
function matching(pattern: RegExp): fc.Arbitrary<string> {
  try {
    return fc.stringMatching(pattern);
  } catch {
    const simpler = new RegExp(pattern.source.replace(/\(\?<?[=!](?:[^()\\]|\\.)*\)/g, ''), pattern.flags);
    try {
      return fc.stringMatching(simpler);
    } catch {
      return fc.string({ maxLength: 24 });
    }
  }
}

class Walker {
  private readonly maxItems: number;

  constructor(
    private readonly root: Node,
    private readonly options: ZodArbitraryOptions,
  ) {
    this.maxItems = options.maxItems ?? 3;
  }

  /** Where a value sits, as `paths` spells it: `ipam.config[].subnet`. */
  private static spell(path: string[]): string {
    return path.map((p, i) => (p === '[]' || i === 0 ? p : `.${p}`)).join('');
  }

  arbitrary(node: unknown, path: string[]): fc.Arbitrary<unknown> {
    const own = this.schemaArbitrary(node, path);
    const name = path.at(-1);
    const mixed =
      this.options.paths?.[Walker.spell(path)] ??
      (name !== undefined ? this.options.keys?.[name] : undefined);
    return mixed ? fc.oneof({ arbitrary: mixed, weight: 3 }, { arbitrary: own, weight: 1 }) : own;
  }

  private schemaArbitrary(node: unknown, path: string[]): fc.Arbitrary<unknown> {
    if (node === true || node === undefined) return anyJson();
    if (node === false) return fc.constant(null);
    const n = node as Node;
    if (typeof n.$ref === 'string') return this.schemaArbitrary(this.resolve(n.$ref), path);
    if ('const' in n) return fc.constant(n.const);
    if (Array.isArray(n.enum)) return fc.constantFrom(...(n.enum as unknown[]));
    const union = (n.anyOf ?? n.oneOf) as unknown[] | undefined;
    if (union) return fc.oneof(...union.map((u) => this.schemaArbitrary(u, path)));
    if (Array.isArray(n.allOf)) return this.schemaArbitrary(n.allOf[0], path);
    if (Array.isArray(n.type))
      return fc.oneof(...n.type.map((t) => this.schemaArbitrary({ ...n, type: t }, path)));
    switch (n.type) {
      case 'object':
        return this.object(n, path);
      case 'array':
        return this.array(n, path);
      case 'string':
        return this.string(n);
      case 'integer':
      case 'number':
        return this.number(n);
      case 'boolean':
        return fc.boolean();
      case 'null':
        return fc.constant(null);
      default:
        return anyJson(); // {} with only a description or a default: anything
    }
  }

  private resolve(ref: string): unknown {
    // "#/$defs/Name" (zod's spelling) or "#" (a recursive schema's root).
    if (ref === '#') return this.root;
    let at: unknown = this.root;
    for (const part of ref.replace(/^#\//, '').split('/')) at = (at as Node)[part];
    return at;
  }

  private object(n: Node, path: string[]): fc.Arbitrary<unknown> {
    const properties = (n.properties ?? {}) as Record<string, unknown>;
    const required = new Set((n.required ?? []) as string[]);
    const presence = this.options.presence ?? 0.5;
    const model: Record<string, fc.Arbitrary<unknown>> = {};
    for (const [k, v] of Object.entries(properties)) {
      const value = this.arbitrary(v, [...path, k]);
      // An optional property: there `presence` of the time (undefined is left out of the JSON).
      model[k] = required.has(k)
        ? value
        : fc.oneof(
            { arbitrary: fc.constant(undefined), weight: Math.round((1 - presence) * 100) },
            { arbitrary: value, weight: Math.round(presence * 100) },
          );
    }
    const named = fc
      .record(model)
      .map((o) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)));
    const extra = n.additionalProperties;
    const isRecord = typeof extra === 'object' && extra !== null && Object.keys(extra).length > 0;
    if (isRecord || n.propertyNames) {
      // A record: keys from propertyNames, values from additionalProperties.
      const keys = this.string({ type: 'string', ...((n.propertyNames ?? {}) as Node) });
      const values = this.arbitrary(extra ?? true, [...path, '[]']);
      const record = fc.dictionary(keys, values, { maxKeys: this.maxItems, noNullPrototype: true });
      return fc.tuple(named, record).map(([a, b]) => ({ ...b, ...a }));
    }
    if (extra === false || this.options.extraKeys === false) return named;
    // A loose object: now and then a key of its own.
    const unknownKeys = fc.dictionary(fc.string({ minLength: 1, maxLength: 12 }), anyJson(), {
      maxKeys: 2,
      noNullPrototype: true,
    });
    return fc.tuple(named, fc.option(unknownKeys, { freq: 8 })).map(([a, b]) => (b ? { ...b, ...a } : a));
  }

  private array(n: Node, path: string[]): fc.Arbitrary<unknown> {
    const minLength = (n.minItems as number | undefined) ?? 0;
    const maxLength = Math.max(
      minLength,
      Math.min((n.maxItems as number | undefined) ?? this.maxItems, this.maxItems),
    );
    const item = [...path, '[]'];
    if (Array.isArray(n.prefixItems)) return fc.tuple(...n.prefixItems.map((p) => this.arbitrary(p, item)));
    return fc.array(this.arbitrary(n.items ?? true, item), { minLength, maxLength });
  }

  private string(n: Node): fc.Arbitrary<string> {
    const minLength = (n.minLength as number | undefined) ?? 0;
    const maxLength = (n.maxLength as number | undefined) ?? Number.POSITIVE_INFINITY;
    const pattern = typeof n.pattern === 'string' ? new RegExp(n.pattern) : undefined;
    const fits = (s: string) =>
      s.length >= minLength && s.length <= maxLength && (!pattern || pattern.test(s));
    const format = typeof n.format === 'string' ? n.format : undefined;
    const builtin = format ? FORMATS[format]?.() : undefined;
    const given = format ? this.options.formats?.[format] : undefined;
    if (builtin || given) {
      const own = builtin?.filter(fits);
      if (own && given) return fc.oneof({ arbitrary: given, weight: 3 }, { arbitrary: own, weight: 1 });
      return (own ?? given) as fc.Arbitrary<string>;
    }
    if (pattern) return matching(pattern).filter(fits);
    const cap = Math.min(maxLength, Math.max(minLength, 24));
    return fc.string({ minLength, maxLength: cap, unit: 'grapheme' }).filter(fits);
  }

  private number(n: Node): fc.Arbitrary<number> {
    const lowest = Number.MIN_SAFE_INTEGER;
    const highest = Number.MAX_SAFE_INTEGER;
    const minExcluded = typeof n.exclusiveMinimum === 'number';
    const maxExcluded = typeof n.exclusiveMaximum === 'number';
    const min = (minExcluded ? n.exclusiveMinimum : n.minimum) as number | undefined;
    const max = (maxExcluded ? n.exclusiveMaximum : n.maximum) as number | undefined;
    if (n.type === 'integer')
      return fc.integer({
        min: Math.max(
          min === undefined ? lowest : minExcluded ? Math.floor(min) + 1 : Math.ceil(min),
          lowest,
        ),
        max: Math.min(
          max === undefined ? highest : maxExcluded ? Math.ceil(max) - 1 : Math.floor(max),
          highest,
        ),
      });
    return fc.double({
      min: min ?? lowest,
      max: max ?? highest,
      minExcluded,
      maxExcluded,
      noNaN: true,
      noDefaultInfinity: true,
    });
  }
}
