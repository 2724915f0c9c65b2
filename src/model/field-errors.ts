import * as z from 'zod/mini';
import en from 'zod/v4/locales/en.js';
import { printable } from '../util/printable.js';

// zod/mini (a fraction of full zod's memory: +1 against +14 MiB RSS in a bundle, measured) has no
// messages of its own; the few issues shown with zod's wording use its English ones.
z.config(en());

/**
 * Field errors worded like the API server's (`spec.ingress[0].ports[0].endPort: Invalid value:
 * 79: must be greater than or equal to port`), so a rejected `weft apply` reads like a
 * rejected `kubectl apply`.
 */
export type FieldPath = ReadonlyArray<string | number>;

/** A field path; keys come from the object, so they are made printable. */
export function formatPath(path: FieldPath): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out === '' ? printable(p, 100) : `.${printable(p, 100)}`;
  return out;
}

/** A value as the API server shows it: JSON (control characters escaped, C1 ones too); long ones cut. */
const show = (v: unknown): string => printable(v === undefined ? 'null' : (JSON.stringify(v) ?? String(v)), 200);

export class FieldErrors {
  readonly list: string[] = [];

  invalid(path: FieldPath, value: unknown, why: string): void {
    this.list.push(`${formatPath(path)}: Invalid value: ${show(value)}: ${why}`);
  }
  required(path: FieldPath, why = ''): void {
    this.list.push(`${formatPath(path)}: Required value${why ? `: ${why}` : ''}`);
  }
  forbidden(path: FieldPath, why: string): void {
    this.list.push(`${formatPath(path)}: Forbidden: ${why}`);
  }
  unsupported(path: FieldPath, value: unknown, supported: readonly string[]): void {
    this.list.push(`${formatPath(path)}: Unsupported value: ${show(value)}: supported values: ${supported.map((s) => `"${s}"`).join(', ')}`);
  }
  tooMany(path: FieldPath, count: number, max: number): void {
    this.list.push(`${formatPath(path)}: Too many: ${count}: must have at most ${max} items`);
  }
  tooLong(path: FieldPath, max: number): void {
    this.list.push(`${formatPath(path) || '<object>'}: Too long: may not be more than ${max} bytes`);
  }
  duplicate(path: FieldPath, value: unknown): void {
    this.list.push(`${formatPath(path)}: Duplicate value: ${show(value)}`);
  }

  /** Structural problems found by a zod schema (wrong types, unknown fields). */
  addZodIssues(issues: readonly z.core.$ZodIssue[], root: FieldPath, input: unknown): void {
    for (const i of issues) {
      const path = [...root, ...(i.path as Array<string | number>)];
      if (i.code === 'unrecognized_keys') {
        for (const k of i.keys) this.list.push(`unknown field "${formatPath([...path, k])}"`);
      } else if (i.code === 'invalid_union' || i.code === 'custom') {
        this.invalid(path, valueAt(input, i.path as FieldPath), i.message);
      } else if (i.code === 'invalid_type' && valueAt(input, i.path as FieldPath) === undefined) {
        this.required(path);
      } else if (i.code === 'invalid_type') {
        this.invalid(path, valueAt(input, i.path as FieldPath), `must be ${EXPECTED[i.expected] ?? i.expected}`);
      } else {
        this.invalid(path, valueAt(input, i.path as FieldPath), i.message);
      }
    }
  }

  /** Throws the API server's summary when there is anything to say. */
  throwIfAny(kind: string, name: string, make: (msg: string) => Error): void {
    if (this.list.length === 0) return;
    const head = `The ${kind} ${show(name)} is invalid:`;
    throw make(this.list.length === 1 ? `${head} ${this.list[0]}` : `${head}\n${this.list.map((l) => `* ${l}`).join('\n')}`);
  }
}

const EXPECTED: Record<string, string> = {
  number: 'a number',
  int: 'an integer',
  string: 'a string',
  array: 'a list',
  object: 'an object',
  boolean: 'true or false',
  record: 'a map of strings',
};

function valueAt(input: unknown, path: FieldPath): unknown {
  let v: unknown = input;
  for (const p of path) {
    if (typeof v !== 'object' || v === null) return undefined;
    v = (v as Record<string | number, unknown>)[p];
  }
  return v;
}

// --- label names and values (apimachinery's validation) ---

const NAME_PART = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Why `key` is not a valid label key (qualified name), or undefined. */
export function labelKeyProblem(key: string): string | undefined {
  const parts = key.split('/');
  let name = key;
  if (parts.length === 2) {
    const prefix = parts[0] as string;
    name = parts[1] as string;
    if (prefix.length === 0) return 'prefix part must be non-empty';
    if (prefix.length > 253) return 'prefix part must be no more than 253 characters';
    if (!DNS1123_SUBDOMAIN.test(prefix)) return "prefix part must be a lowercase DNS subdomain (a-z, 0-9, '-', '.'; e.g. 'example.com')";
  } else if (parts.length > 2) {
    return "a qualified name must consist of an optional DNS subdomain prefix and '/' and a name (e.g. 'example.com/MyName')";
  }
  if (name.length === 0) return 'name part must be non-empty';
  if (name.length > 63) return 'name part must be no more than 63 characters';
  if (!NAME_PART.test(name)) return "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName', 'my.name', '123-abc')";
  return undefined;
}

export function labelValueProblem(value: string): string | undefined {
  if (value.length > 63) return 'must be no more than 63 characters';
  if (value !== '' && !NAME_PART.test(value)) return "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue', 'my_value', '12345')";
  return undefined;
}

/** IANA service name rules, as Kubernetes checks a named port. */
export function portNameProblem(name: string): string | undefined {
  if (name.length > 15) return 'must be no more than 15 characters';
  if (!/^[-a-z0-9]+$/.test(name)) return 'must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)';
  if (!/[a-z]/.test(name)) return 'must contain at least one letter (a-z)';
  if (name.includes('--')) return 'must not contain consecutive hyphens';
  if (name.startsWith('-') || name.endsWith('-')) return 'must not begin or end with a hyphen';
  return undefined;
}

export const PORT_RANGE_PROBLEM = 'must be between 1 and 65535, inclusive';
export const validPortNumber = (n: number): boolean => Number.isInteger(n) && n >= 1 && n <= 65535;
