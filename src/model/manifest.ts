import { parseAllDocuments } from 'yaml';
import { UserError } from '../util/user-error.js';
import { admitClusterPolicy } from './cluster-policy.js';
import { admitNetworkPolicy } from './network-policy.js';
import type { KObject, NetworkPolicyObject, WeftClusterPolicyObject } from './objects.js';

/**
 * Manifests for `weft apply -f` / `weft delete -f` (pure): YAML (several documents) or JSON, a
 * single object or a List; checked for what every object needs, with the API server's
 * defaulting applied where Weft stands in for it.
 */
const NAMESPACED = new Set(['Pod', 'NetworkPolicy', 'Service', 'EndpointSlice', 'WeftEndpoint', 'Lease', 'ConfigMap']);
const CLUSTER_SCOPED = new Set(['Namespace', 'Node', 'ClusterNetwork', 'IPBlock', 'WeftClusterPolicy']);

export function isNamespaced(kind: string): boolean {
  return NAMESPACED.has(kind) || !CLUSTER_SCOPED.has(kind);
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
  const name = m['name'];
  if (typeof name !== 'string' || !/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(name)) {
    fail(where, `${o['kind']}: metadata.name ${JSON.stringify(name)} must be a lowercase DNS name (a-z, 0-9, "-", ".")`);
  }
  const kind = o['kind'];
  const id = `${kind} ${name}`;
  if (isNamespaced(kind)) {
    if (m['namespace'] === undefined) m['namespace'] = 'default';
    if (typeof m['namespace'] !== 'string' || !/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(m['namespace'])) fail(where, `${id}: metadata.namespace must be a DNS label`);
  } else if (m['namespace'] !== undefined) {
    fail(where, `${id}: a ${kind} is cluster-scoped and has no metadata.namespace`);
  }
  for (const field of ['labels', 'annotations'] as const) {
    const map = m[field];
    if (map === undefined) continue;
    if (typeof map !== 'object' || map === null || Object.values(map).some((x) => typeof x !== 'string')) fail(where, `${id}: metadata.${field} must map strings to strings`);
  }
  delete m['resourceVersion'];
  try {
    return admit(o as unknown as KObject);
  } catch (err) {
    if (err instanceof UserError) fail(where, err.message);
    throw err;
  }
}

/**
 * What the API server does on create — validation and defaulting — for the kinds Weft stores
 * without one. Throws a UserError naming every invalid field.
 */
export function admit(obj: KObject): KObject {
  switch (obj.kind) {
    case 'Namespace':
      obj.metadata.labels = { ...(obj.metadata.labels ?? {}), 'kubernetes.io/metadata.name': obj.metadata.name };
      return obj;
    case 'NetworkPolicy':
      return admitNetworkPolicy(obj as NetworkPolicyObject);
    case 'WeftClusterPolicy':
      return admitClusterPolicy(obj as WeftClusterPolicyObject);
    default:
      return obj;
  }
}

export function describeObject(o: KObject): string {
  return `${o.kind.toLowerCase()}/${o.metadata.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata.name}`;
}
