import { parseAllDocuments } from 'yaml';
import { UserError } from '../util/user-error.js';
import { admitObject, isNamespacedKind } from './admission.js';
import type { KObject } from './objects.js';

/**
 * Manifests for `weft apply -f` / `weft delete -f` (pure): YAML (several documents) or JSON, a
 * single object or a List; checked for what every object needs, with the API server's
 * defaulting applied where Weft stands in for it.
 */
export function isNamespaced(kind: string): boolean {
  return isNamespacedKind(kind);
}

function fail(where: string, msg: string): never {
  throw new UserError(`${where}: ${msg}`);
}

export function parseManifests(text: string, source: string): KObject[] {
  const docs = parseAllDocuments(text, { prettyErrors: true });
  const out: KObject[] = [];
  docs.forEach((doc, i) => {
    const where = docs.length > 1 ? `${source} (document ${i + 1})` : source;
    if (doc.errors.length) fail(where, `not valid YAML/JSON: ${doc.errors[0]?.message.split('\n')[0]}`);
    const value = doc.toJS() as unknown;
    if (value === null || value === undefined) return;
    const items = isList(value) ? (value.items as unknown[]) : [value];
    items.forEach((item, j) => out.push(checkObject(item, isList(value) ? `${where} items[${j}]` : where)));
  });
  if (out.length === 0) fail(source, 'no objects in it');
  return out;
}

function isList(v: unknown): v is { kind: string; items: unknown[] } {
  return typeof v === 'object' && v !== null && (v as { kind?: unknown }).kind === 'List' && Array.isArray((v as { items?: unknown }).items);
}

function checkObject(v: unknown, where: string): KObject {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(where, 'expected an object with apiVersion, kind and metadata');
  const o = v as Record<string, unknown>;
  if (typeof o['apiVersion'] !== 'string' || o['apiVersion'] === '') fail(where, 'apiVersion is required (e.g. v1, networking.k8s.io/v1)');
  if (typeof o['kind'] !== 'string' || !/^[A-Z][A-Za-z0-9]*$/.test(o['kind'])) fail(where, 'kind is required (e.g. Namespace, NetworkPolicy)');
  const meta = o['metadata'];
  if (typeof meta !== 'object' || meta === null) fail(where, `${o['kind']}: metadata is required`);
  const m = meta as Record<string, unknown>;
  // kubectl's defaulting: the default namespace; the server's own fields are not the user's to set.
  if (isNamespaced(o['kind']) && m['namespace'] === undefined) m['namespace'] = 'default';
  delete m['resourceVersion'];
  try {
    return admitObject(o);
  } catch (err) {
    if (err instanceof UserError) fail(where, err.message);
    throw err;
  }
}

export function describeObject(o: KObject): string {
  return `${o.kind.toLowerCase()}/${o.metadata.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata.name}`;
}
