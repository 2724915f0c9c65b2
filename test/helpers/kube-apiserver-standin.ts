/**
 * A Kubernetes API server stand-in for tests (no kube-apiserver can be installed here): one
 * in-memory process speaking the REST protocol of kube-apiserver v1.30 closely enough that the
 * real clients — kubectl and @kubernetes/client-node — work against it unchanged. It listens on
 * 127.0.0.1 only (port 0), over TLS with a self-signed certificate made by the `openssl` CLI,
 * and requires `Authorization: Bearer <token>` on every path (as a server with anonymous auth
 * off: 401 otherwise, /version and /healthz included).
 *
 * What it does, as the real server does:
 * - built-in resources: core v1 namespaces, nodes, pods, configmaps, serviceaccounts, services;
 *   coordination.k8s.io/v1 leases; networking.k8s.io/v1 networkpolicies; apiextensions.k8s.io/v1
 *   customresourcedefinitions; rbac.authorization.k8s.io/v1 (cluster)roles and (cluster)rolebindings;
 *   apps/v1 daemonsets; scheduling.k8s.io/v1 priorityclasses. Namespaces default, kube-system,
 *   kube-public and kube-node-lease exist at start (revisions 1–4).
 * - CRDs (checked as the real server does: schemas required, name = plural.group, one storage
 *   version, protected *.k8s.io groups need the api-approved annotation): served at their paths
 *   once created (every served version; objects shared between versions, conversion None). The
 *   create's answer has empty status conditions; a second write right after it sets
 *   NamesAccepted/Established=True, acceptedNames and storedVersions, as the apiextensions
 *   controllers do. Custom objects are pruned of unknown fields, defaulted and validated against
 *   the openAPIV3Schema (type, required, enum, minimum/maximum, minLength/maxLength, pattern,
 *   minItems/maxItems, min/maxProperties, nullable, x-kubernetes-preserve-unknown-fields,
 *   x-kubernetes-int-or-string, x-kubernetes-embedded-resource) with the real messages; status is
 *   dropped on create when there is a status subresource. Deleting a CRD deletes its objects
 *   (DELETED events) and ends the watches on them.
 * - one global revision; every write bumps it and stamps metadata.resourceVersion; a write that
 *   changes nothing is not a write (same object and revision back, no event), as in etcd3 storage.
 * - create / get / list / update / patch / delete with the real Status errors, reasons and messages
 *   (NotFound, AlreadyExists, Conflict, Invalid with causes, BadRequest, …); status subresources
 *   (pods', nodes' and namespaces' take the request's labels and annotations too, as their status
 *   strategies do; other kinds' only .status); a metadata.uid in a PUT is a precondition (409),
 *   one a patch changes is an immutable field (422);
 *   generation; generateName; dryRun=All; label and field selectors; limit/continue (consistent:
 *   a continued list is the snapshot at the first page's revision, rebuilt from the event history,
 *   410 Expired once that is compacted); resourceVersion/resourceVersionMatch on lists;
 *   merge, JSON and strategic-merge patches.
 * - watches with the event history (the last 10,000 events), 410 Expired as an ERROR event,
 *   selector transitions as ADDED/DELETED, bookmarks, timeoutSeconds.
 * - discovery: /version, /api, /apis, /apis/{group}, /api/v1, /apis/{g}/{v}, and the aggregated
 *   form (apidiscovery.k8s.io v2 and v2beta1) when the client asks for it first, as v1.30 does;
 *   kubectl 1.30 uses it (two requests), and copes with the plain forms too (tried).
 * - OpenAPI: /openapi/v3 (root and one document per group-version) is served with only what
 *   kubectl reads before a write: each resource's PATCH operation with its
 *   x-kubernetes-group-version-kind and the `fieldValidation` query parameter. Found by trying:
 *   with /openapi/v3 answering 404, plain `kubectl apply`/`create` fail ("failed to download
 *   openapi … turn validation off with --validate=false"); with this document kubectl concludes
 *   the server validates fields itself and needs no schema. /openapi/v2 answers 404 (kubectl
 *   then computes strategic merge patches from its compiled-in types, as it does for any server
 *   without it). The documents carry no schemas: `kubectl explain` does not work.
 * - a few real defaults and checks that a networking datastore meets: namespaces get the
 *   kubernetes.io/metadata.name label, spec.finalizers and status.phase Active; pods get
 *   status.phase Pending and a qosClass, need containers with name and image, and their spec is
 *   immutable but for images, activeDeadlineSeconds, tolerations and terminationGracePeriodSeconds;
 *   nodes keep spec.podCIDR and spec.podCIDRs in step and refuse to change them once set;
 *   network policies get a podSelector, policyTypes and port protocols defaulted; services need
 *   ports; daemon sets need a selector matching their template; name rules per kind (namespaces
 *   RFC 1123 labels, services RFC 1035 labels, RBAC path segments, the rest RFC 1123 subdomains);
 *   label and annotation keys and values.
 *
 * What it does NOT do (unlike the real kube-apiserver):
 * - no etcd, no persistence, no controllers: nothing schedules pods, creates service accounts
 *   or the default/kubernetes Service, allocates ClusterIPs, runs garbage collection (ownerReferences
 *   are kept but not acted on) or keeps endpoints; most built-in defaulting (pod restartPolicy,
 *   dnsPolicy, container imagePullPolicy, service type …) and most field validation are absent.
 * - no graceful deletion, finalizers or Terminating namespaces: DELETE removes the object at once
 *   (200 with the object at the deletion's revision); deleting a Namespace deletes its objects at
 *   once too (a DELETED event each), so a later DELETE of one of them is 404 — `kubectl delete -f`
 *   of a file with a Namespace and then objects in it needs --ignore-not-found here.
 * - metadata.generation is 1 on create for every kind (the real server sets it only for some
 *   kinds) and bumps when spec changes (for custom resources: anything outside metadata, and
 *   outside status when it has a status subresource).
 * - strategic merge patches know the list merge keys of the served built-in kinds' common list
 *   fields only (containers, env, ports, volumes, volumeMounts, conditions, ownerReferences,
 *   finalizers, … — MERGE_KEYS below, with the directives $patch, $retainKeys, $setElementOrder
 *   and $deleteFromPrimitiveList); any other list is replaced whole, as in a merge patch, which
 *   is where they can differ from the real server's (it knows every field's patch strategy).
 * - no server-side apply (application/apply-patch+yaml → 415), no managedFields, no field
 *   validation of unknown fields (fieldValidation is accepted and ignored), no admission other
 *   than "the namespace must exist", no impersonation. RBAC only for service-account tokens
 *   (serviceAccountToken): stored ClusterRoles and Roles through their bindings, with
 *   resourceNames; no aggregated roles, user or group subjects, escalation checks or
 *   non-resource rules (discovery is open to every token); the admin token may do everything.
 * - JSON only (no protobuf, no Table: kubectl's `get` falls back to its own printers, no
 *   PartialObjectMetadata), HTTP/1.1 only (no HTTP/2), no deletecollection, no exec/log/
 *   proxy/binding/eviction/scale subresources, no WatchList (sendInitialEvents → 422, as v1.30
 *   with the feature gate off), no CRD conversion webhooks, no OpenAPI schemas.
 * - CRD schemas: no CEL (x-kubernetes-validations), anyOf/oneOf/allOf/not, format,
 *   uniqueItems, multipleOf, list-type/map-keys checks: such objects are admitted.
 * - the kubeconfig for tls: false marks the cluster insecure-skip-tls-verify (meaningless over
 *   HTTP, but client-node refuses an http:// server without it).
 * - a watch or list from a revision newer than the current one is not made to wait 3 s before
 *   a 504: a watch simply waits for it, a list answers 504 Timeout at once; watches without
 *   timeoutSeconds never end on their own (the real server ends them after 30–60 min).
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';

export interface StandinOptions {
  tls?: boolean /* default true */;
  token?: string /* default: random */;
  /**
   * Listen on this unix socket instead (plain HTTP; url unix:///PATH): reachable from every
   * network namespace through the filesystem, as the lab needs — Weft's own client speaks it,
   * kubectl and client-node do not.
   */
  socketPath?: string;
}
export interface StandinRequest {
  method: string;
  path: string;
  query: string;
  status: number;
  watch: boolean;
  userAgent: string;
}

type Json = null | boolean | number | string | Json[] | JsonObject;
interface JsonObject {
  [key: string]: Json;
}

const GIT_VERSION = 'v1.30.0';
const HISTORY_LIMIT = 10_000;
const BODY_LIMIT = 3 * 1024 * 1024;
const VERBS = ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'];
const STATUS_VERBS = ['get', 'patch', 'update'];

// ---------------------------------------------------------------------------------------------
// JSON helpers

/** A parsed body as JSON, or an error for what JSON cannot hold (YAML can). */
function toJson(v: unknown): Json {
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return v;
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new Error(`${v} is not a JSON number`);
    return v;
  }
  if (Array.isArray(v)) return v.map(toJson);
  if (typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
    const out: JsonObject = {};
    for (const [k, x] of Object.entries(v)) out[k] = toJson(x);
    return out;
  }
  throw new Error(`a ${typeof v} is not JSON`);
}

function isObj(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function objAt(o: JsonObject | undefined, key: string): JsonObject | undefined {
  const v = o?.[key];
  return isObj(v) ? v : undefined;
}

function strAt(o: JsonObject | undefined, key: string): string | undefined {
  const v = o?.[key];
  return typeof v === 'string' ? v : undefined;
}

function arrAt(o: JsonObject | undefined, key: string): Json[] | undefined {
  const v = o?.[key];
  return Array.isArray(v) ? v : undefined;
}

function metaOf(o: JsonObject): JsonObject {
  const m = o['metadata'];
  if (isObj(m)) return m;
  const fresh: JsonObject = {};
  o['metadata'] = fresh;
  return fresh;
}

function deepEqual(a: Json | undefined, b: Json | undefined): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((x, i) => deepEqual(x, b[i]));
  if (isObj(a) && isObj(b)) {
    const ka = Object.keys(a);
    return ka.length === Object.keys(b).length && ka.every((k) => k in b && deepEqual(a[k], b[k]));
  }
  return false;
}

function without(o: JsonObject, keys: string[]): JsonObject {
  const out: JsonObject = { ...o };
  for (const k of keys) delete out[k];
  return out;
}

/** RFC 3339 at whole seconds, as metav1.Time is serialised. */
function now(): string {
  return new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** A Go-style %q of a string, for messages. */
function q(s: string): string {
  return JSON.stringify(s);
}

function typeName(v: Json): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

// ---------------------------------------------------------------------------------------------
// Errors as metav1.Status

class ApiError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly details?: JsonObject,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }

  status(): JsonObject {
    const s: JsonObject = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: this.message };
    // The real server leaves reason out when it is "Unknown" (an error that is not an API error).
    if (this.reason) s['reason'] = this.reason;
    if (this.details) s['details'] = this.details;
    s['code'] = this.code;
    return s;
  }
}

interface Cause {
  field: string;
  reason: string;
  message: string;
}

const badRequest = (message: string): ApiError => new ApiError(400, 'BadRequest', message);
const notFoundPath = (): ApiError => new ApiError(404, 'NotFound', 'the server could not find the requested resource', {});
const methodNotAllowed = (): ApiError => new ApiError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource', {});

function unsupportedMedia(accepted: string[]): ApiError {
  return new ApiError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: ${accepted.join(', ')}`, {});
}

function expired(message: string): ApiError {
  return new ApiError(410, 'Expired', message);
}

function invalidValue(field: string, value: Json, detail: string): Cause {
  return { field, reason: 'FieldValueInvalid', message: `Invalid value: ${valueString(value)}: ${detail}` };
}

function required(field: string, detail?: string): Cause {
  return { field, reason: 'FieldValueRequired', message: detail ? `Required value: ${detail}` : 'Required value' };
}

function forbidden(field: string, detail: string): Cause {
  return { field, reason: 'FieldValueForbidden', message: `Forbidden: ${detail}` };
}

function valueString(v: Json): string {
  if (typeof v === 'string') return q(v);
  if (typeof v === 'number' || typeof v === 'boolean' || v === null) return String(v);
  return JSON.stringify(v);
}

// ---------------------------------------------------------------------------------------------
// Resources

type NameRule = 'subdomain' | 'label' | 'dns1035' | 'segment';

interface ResourceDef {
  group: string;
  version: string;
  plural: string;
  singular: string;
  kind: string;
  listKind: string;
  namespaced: boolean;
  shortNames: string[];
  categories: string[];
  /** Has a status subresource. */
  status: boolean;
  /** The CustomResourceDefinition that defines it; undefined for a built-in. */
  crd: string | undefined;
  schema: JsonObject | undefined;
  /** Field selector labels beyond metadata.name and metadata.namespace. */
  fieldLabels: string[];
  nameRule: NameRule;
}

function apiVersionOf(rd: ResourceDef): string {
  return rd.group ? `${rd.group}/${rd.version}` : rd.version;
}

function storeKeyOf(rd: ResourceDef): string {
  return `${rd.group}/${rd.plural}`;
}

/** "pods", "leases.coordination.k8s.io": how the real server names a resource in messages. */
function qualifiedResource(rd: ResourceDef): string {
  return rd.group ? `${rd.plural}.${rd.group}` : rd.plural;
}

function qualifiedKind(rd: ResourceDef): string {
  return rd.group ? `${rd.kind}.${rd.group}` : rd.kind;
}

function resourceDetails(rd: ResourceDef, name: string): JsonObject {
  const d: JsonObject = { name };
  if (rd.group) d['group'] = rd.group;
  d['kind'] = rd.plural;
  return d;
}

function notFound(rd: ResourceDef, name: string): ApiError {
  return new ApiError(404, 'NotFound', `${qualifiedResource(rd)} ${q(name)} not found`, resourceDetails(rd, name));
}

function conflict(rd: ResourceDef, name: string, why: string): ApiError {
  return new ApiError(409, 'Conflict', `Operation cannot be fulfilled on ${qualifiedResource(rd)} ${q(name)}: ${why}`, resourceDetails(rd, name));
}

const MODIFIED_MSG = 'the object has been modified; please apply your changes to the latest version and try again';

function invalid(rd: ResourceDef, name: string, causes: Cause[]): ApiError {
  const parts = causes.map((c) => `${c.field}: ${c.message}`);
  const list = parts.length === 1 ? parts[0] ?? '' : `[${parts.join(', ')}]`;
  const details: JsonObject = { name };
  if (rd.group) details['group'] = rd.group;
  details['kind'] = rd.kind;
  details['causes'] = causes.map((c) => ({ reason: c.reason, message: c.message, field: c.field }));
  return new ApiError(422, 'Invalid', `${qualifiedKind(rd)} ${q(name)} is invalid: ${list}`, details);
}

function builtin(
  group: string,
  version: string,
  plural: string,
  kind: string,
  o: { namespaced: boolean; shortNames?: string[]; categories?: string[]; status?: boolean; fieldLabels?: string[]; nameRule?: NameRule },
): ResourceDef {
  return {
    group,
    version,
    plural,
    singular: kind.toLowerCase(),
    kind,
    listKind: `${kind}List`,
    namespaced: o.namespaced,
    shortNames: o.shortNames ?? [],
    categories: o.categories ?? [],
    status: o.status ?? false,
    crd: undefined,
    schema: undefined,
    fieldLabels: o.fieldLabels ?? [],
    nameRule: o.nameRule ?? 'subdomain',
  };
}

const POD_FIELDS = ['spec.nodeName', 'spec.restartPolicy', 'spec.schedulerName', 'spec.serviceAccountName', 'spec.hostNetwork', 'status.phase', 'status.podIP', 'status.podIPs', 'status.nominatedNodeName'];

const BUILTINS: ResourceDef[] = [
  builtin('', 'v1', 'configmaps', 'ConfigMap', { namespaced: true, shortNames: ['cm'] }),
  builtin('', 'v1', 'namespaces', 'Namespace', { namespaced: false, shortNames: ['ns'], status: true, fieldLabels: ['status.phase'], nameRule: 'label' }),
  builtin('', 'v1', 'nodes', 'Node', { namespaced: false, shortNames: ['no'], status: true, fieldLabels: ['spec.unschedulable'] }),
  builtin('', 'v1', 'pods', 'Pod', { namespaced: true, shortNames: ['po'], categories: ['all'], status: true, fieldLabels: POD_FIELDS }),
  builtin('', 'v1', 'serviceaccounts', 'ServiceAccount', { namespaced: true, shortNames: ['sa'] }),
  builtin('', 'v1', 'services', 'Service', { namespaced: true, shortNames: ['svc'], categories: ['all'], status: true, nameRule: 'dns1035' }),
  builtin('apps', 'v1', 'daemonsets', 'DaemonSet', { namespaced: true, shortNames: ['ds'], categories: ['all'], status: true }),
  builtin('networking.k8s.io', 'v1', 'networkpolicies', 'NetworkPolicy', { namespaced: true, shortNames: ['netpol'] }),
  builtin('rbac.authorization.k8s.io', 'v1', 'clusterrolebindings', 'ClusterRoleBinding', { namespaced: false, nameRule: 'segment' }),
  builtin('rbac.authorization.k8s.io', 'v1', 'clusterroles', 'ClusterRole', { namespaced: false, nameRule: 'segment' }),
  builtin('rbac.authorization.k8s.io', 'v1', 'rolebindings', 'RoleBinding', { namespaced: true, nameRule: 'segment' }),
  builtin('rbac.authorization.k8s.io', 'v1', 'roles', 'Role', { namespaced: true, nameRule: 'segment' }),
  builtin('apiextensions.k8s.io', 'v1', 'customresourcedefinitions', 'CustomResourceDefinition', { namespaced: false, shortNames: ['crd', 'crds'], categories: ['api-extensions'], status: true }),
  builtin('scheduling.k8s.io', 'v1', 'priorityclasses', 'PriorityClass', { namespaced: false, shortNames: ['pc'] }),
  builtin('coordination.k8s.io', 'v1', 'leases', 'Lease', { namespaced: true }),
];

/** Kubernetes' version order: GA before beta before alpha, then by number, descending. */
function versionRank(v: string): [number, number, number] {
  const m = /^v(\d+)(?:(alpha|beta)(\d+))?$/.exec(v);
  if (!m) return [0, 0, 0];
  const level = m[2] === undefined ? 3 : m[2] === 'beta' ? 2 : 1;
  return [level, Number(m[1]), Number(m[3] ?? 0)];
}

function compareVersions(a: string, b: string): number {
  const [x, y] = [versionRank(a), versionRank(b)];
  for (let i = 0; i < 3; i++) if ((x[i] ?? 0) !== (y[i] ?? 0)) return (y[i] ?? 0) - (x[i] ?? 0);
  return a.localeCompare(b);
}

// ---------------------------------------------------------------------------------------------
// Names, labels

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const QUALIFIED_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

const SUBDOMAIN_MSG = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_MSG = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1035_MSG = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const QUALIFIED_MSG = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const LABEL_VALUE_MSG = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

function nameProblems(rule: NameRule, name: string): string[] {
  switch (rule) {
    case 'segment':
      if (name === '.' || name === '..') return [`may not be '${name}'`];
      if (name.includes('/')) return ["may not contain '/'"];
      if (name.includes('%')) return ["may not contain '%'"];
      return [];
    case 'label':
      return [...(name.length > 63 ? ['must be no more than 63 characters'] : []), ...(DNS1123_LABEL.test(name) ? [] : [LABEL_MSG])];
    case 'dns1035':
      return [...(name.length > 63 ? ['must be no more than 63 characters'] : []), ...(DNS1035_LABEL.test(name) ? [] : [DNS1035_MSG])];
    case 'subdomain':
      return [...(name.length > 253 ? ['must be no more than 253 characters'] : []), ...(DNS1123_SUBDOMAIN.test(name) ? [] : [SUBDOMAIN_MSG])];
  }
}

function qualifiedNameProblems(key: string): string[] {
  const slash = key.lastIndexOf('/');
  const [prefix, name] = slash >= 0 ? [key.slice(0, slash), key.slice(slash + 1)] : [undefined, key];
  const out: string[] = [];
  if (prefix !== undefined) {
    if (prefix === '') out.push('prefix part must be non-empty');
    else if (prefix.length > 253 || !DNS1123_SUBDOMAIN.test(prefix)) out.push(`prefix part ${SUBDOMAIN_MSG}`);
  }
  if (name === '') out.push('name part must be non-empty');
  else {
    if (name.length > 63) out.push('name part must be no more than 63 characters');
    if (!QUALIFIED_NAME.test(name)) out.push(QUALIFIED_MSG);
  }
  return out;
}

function validateMeta(rd: ResourceDef, obj: JsonObject, causes: Cause[]): void {
  const m = metaOf(obj);
  const name = strAt(m, 'name') ?? '';
  if (name === '') causes.push(required('metadata.name', 'name or generateName is required'));
  else for (const p of nameProblems(rd.nameRule, name)) causes.push(invalidValue('metadata.name', name, p));
  const labels = objAt(m, 'labels');
  for (const [k, v] of Object.entries(labels ?? {})) {
    for (const p of qualifiedNameProblems(k)) causes.push(invalidValue('metadata.labels', k, p));
    const value = typeof v === 'string' ? v : '';
    if (value.length > 63) causes.push(invalidValue('metadata.labels', value, 'must be no more than 63 characters'));
    if (!LABEL_VALUE.test(value)) causes.push(invalidValue('metadata.labels', value, LABEL_VALUE_MSG));
  }
  const annotations = objAt(m, 'annotations');
  for (const k of Object.keys(annotations ?? {})) {
    for (const p of qualifiedNameProblems(k)) causes.push(invalidValue('metadata.annotations', k, p));
  }
}

/** Go would refuse to decode a non-string label or annotation value into ObjectMeta: 400. */
function checkStringMaps(obj: JsonObject): void {
  const m = objAt(obj, 'metadata');
  for (const field of ['labels', 'annotations']) {
    const map = m?.[field];
    if (map === undefined || map === null) continue;
    if (!isObj(map)) throw badRequest(`json: cannot unmarshal ${typeName(map)} into Go struct field ObjectMeta.metadata.${field} of type map[string]string`);
    for (const v of Object.values(map)) {
      if (typeof v !== 'string') throw badRequest(`json: cannot unmarshal ${typeName(v)} into Go struct field ObjectMeta.metadata.${field} of type string`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Selectors

interface LabelReq {
  key: string;
  op: 'in' | 'notin' | 'exists' | 'notexists' | 'gt' | 'lt';
  values: string[];
}

/** The label selector grammar of k8s.io/apimachinery/pkg/labels. */
function parseLabelSelector(s: string): LabelReq[] {
  const tokens: string[] = [];
  const re = /\s*(==|!=|=|!|\(|\)|,|<|>|[^\s=!(),<>]+)/y;
  let pos = 0;
  while (pos < s.length) {
    if (/^\s*$/.test(s.slice(pos))) break;
    re.lastIndex = pos;
    const m = re.exec(s);
    if (!m || m[1] === undefined) throw badRequest(`unable to parse requirement: invalid selector: ${q(s)}`);
    tokens.push(m[1]);
    pos = re.lastIndex;
  }
  const reqs: LabelReq[] = [];
  let i = 0;
  const isIdent = (t: string | undefined): t is string => t !== undefined && !['==', '!=', '=', '!', '(', ')', ',', '<', '>'].includes(t);
  const fail = (what: string): ApiError => badRequest(`unable to parse requirement: ${what}`);
  while (i < tokens.length) {
    let negate = false;
    if (tokens[i] === '!') {
      negate = true;
      i++;
    }
    const key = tokens[i];
    if (!isIdent(key)) throw fail(`found '${tokens[i] ?? ''}', expected: identifier`);
    const keyProblems = qualifiedNameProblems(key);
    if (keyProblems.length) throw fail(`key: Invalid value: ${q(key)}: ${keyProblems.join('; ')}`);
    i++;
    const op = tokens[i];
    if (negate) {
      if (op !== undefined && op !== ',') throw fail(`found '${op}', expected: ',' or 'end of string'`);
      reqs.push({ key: key, op: 'notexists', values: [] });
    } else if (op === undefined || op === ',') {
      reqs.push({ key: key, op: 'exists', values: [] });
    } else if (op === '=' || op === '==' || op === '!=' || op === '<' || op === '>') {
      i++;
      let value = tokens[i];
      if (!isIdent(value)) {
        // "key=" selects an empty value.
        value = '';
      } else i++;
      if (!LABEL_VALUE.test(value) || value.length > 63) throw fail(`values[0][${key}]: Invalid value: ${q(value)}: ${LABEL_VALUE_MSG}`);
      if ((op === '<' || op === '>') && !/^-?\d+$/.test(value)) throw fail(`for 'Gt', 'Lt' operators, the value must be an integer`);
      reqs.push({ key: key, op: op === '!=' ? 'notin' : op === '<' ? 'lt' : op === '>' ? 'gt' : 'in', values: [value] });
    } else if (op === 'in' || op === 'notin') {
      i++;
      if (tokens[i] !== '(') throw fail(`found '${tokens[i] ?? ''}', expected: '('`);
      i++;
      const values: string[] = [];
      while (tokens[i] !== ')') {
        const v = tokens[i];
        if (v === undefined) throw fail(`found '', expected: ')'`);
        if (v === ',') {
          i++;
          continue;
        }
        if (!isIdent(v)) throw fail(`found '${v}', expected: ',', ')' or identifier`);
        values.push(v);
        i++;
      }
      i++;
      reqs.push({ key: key, op, values });
    } else {
      throw fail(`found '${op}', expected: in, notin, =, ==, !=, gt, lt`);
    }
    if (i < tokens.length) {
      if (tokens[i] !== ',') throw fail(`found '${tokens[i] ?? ''}', expected: ',' or 'end of string'`);
      i++;
    }
  }
  return reqs;
}

function matchLabels(reqs: LabelReq[], labels: JsonObject | undefined): boolean {
  return reqs.every((r) => {
    const v = labels?.[r.key];
    const has = typeof v === 'string';
    switch (r.op) {
      case 'exists':
        return has;
      case 'notexists':
        return !has;
      case 'in':
        return has && r.values.includes(v);
      case 'notin':
        return !has || !r.values.includes(v);
      case 'gt':
        return has && /^-?\d+$/.test(v) && Number(v) > Number(r.values[0]);
      case 'lt':
        return has && /^-?\d+$/.test(v) && Number(v) < Number(r.values[0]);
    }
  });
}

interface FieldReq {
  field: string;
  equal: boolean;
  value: string;
}

function splitUnescaped(s: string, sep: string): string[] {
  const out: string[] = [];
  let cur = '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i] ?? '';
    if (c === '\\' && i + 1 < s.length) {
      cur += c + (s[i + 1] ?? '');
      i++;
    } else if (c === sep) {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  out.push(cur);
  return out;
}

function unescapeField(s: string): string {
  return s.replace(/\\(.)/g, '$1');
}

function parseFieldSelector(s: string, rd: ResourceDef): FieldReq[] {
  const out: FieldReq[] = [];
  for (const term of splitUnescaped(s, ',')) {
    if (term.trim() === '') continue;
    const m = /^(.*?)(!=|==|=)(.*)$/.exec(term);
    if (!m) throw badRequest(`invalid selector: '${s}'; can't understand '${term}'`);
    const field = (m[1] ?? '').trim();
    if (field !== 'metadata.name' && field !== 'metadata.namespace' && !rd.fieldLabels.includes(field)) {
      // Built-ins and custom resources word this differently in the real server.
      throw badRequest(rd.crd ? `${q(field)} is not a known field selector: only "metadata.name", "metadata.namespace"` : `field label not supported: ${field}`);
    }
    out.push({ field, equal: m[2] !== '!=', value: unescapeField(m[3] ?? '') });
  }
  return out;
}

function fieldValue(obj: JsonObject, field: string): string {
  if (field === 'spec.hostNetwork' || field === 'spec.unschedulable') {
    return objAt(obj, 'spec')?.[field.slice(5)] === true ? 'true' : 'false';
  }
  if (field === 'status.podIPs') {
    const ips = objAt(obj, 'status')?.['podIPs'];
    const first = Array.isArray(ips) ? ips[0] : undefined;
    return isObj(first) ? strAt(first, 'ip') ?? '' : '';
  }
  const [top, sub] = field.split('.');
  return strAt(objAt(obj, top ?? ''), sub ?? '') ?? '';
}

function matchFields(reqs: FieldReq[], obj: JsonObject): boolean {
  return reqs.every((r) => (fieldValue(obj, r.field) === r.value) === r.equal);
}

// ---------------------------------------------------------------------------------------------
// Patches

function mergePatch(target: Json | undefined, patch: Json): Json {
  if (!isObj(patch)) return structuredClone(patch);
  const out: JsonObject = isObj(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

/**
 * The patchMergeKey of the list fields of the served built-in kinds (from their Go types'
 * `patchStrategy:"merge"` tags). Lists of any other field are replaced whole, as in a merge
 * patch — in the real server most of them are atomic too.
 */
const MERGE_KEYS: Record<string, string> = {
  containers: 'name',
  initContainers: 'name',
  ephemeralContainers: 'name',
  env: 'name',
  volumes: 'name',
  volumeMounts: 'mountPath',
  volumeDevices: 'devicePath',
  imagePullSecrets: 'name',
  resourceClaims: 'name',
  hostAliases: 'ip',
  topologySpreadConstraints: 'topologyKey',
  conditions: 'type',
  addresses: 'type',
  podIPs: 'ip',
  hostIPs: 'ip',
  ownerReferences: 'uid',
};
/** Lists of strings merged as sets. */
const PRIMITIVE_MERGE = new Set(['finalizers', 'podCIDRs']);

function mergeKeyOf(field: string, path: string[], patch: Json[], orig: Json | undefined): string | undefined {
  // NetworkPolicy rules' ports and peers are atomic lists.
  if (path.includes('ingress') || path.includes('egress')) return undefined;
  if (field === 'ports') {
    // Container ports merge on containerPort, a Service's on port.
    const sample = [...patch, ...(Array.isArray(orig) ? orig : [])].find(isObj);
    return sample && 'containerPort' in sample ? 'containerPort' : 'port';
  }
  return MERGE_KEYS[field];
}

function mergeList(orig: Json | undefined, patch: Json[], key: string, path: string[]): Json[] {
  const plain = patch.filter((e) => !(isObj(e) && '$patch' in e && e['$patch'] !== 'delete'));
  if (patch.some((e) => isObj(e) && e['$patch'] === 'replace')) return patch.filter((e) => !(isObj(e) && '$patch' in e)).map((e) => structuredClone(e));
  const out: Json[] = Array.isArray(orig) ? [...orig] : [];
  for (const e of plain) {
    if (!isObj(e)) continue;
    const i = out.findIndex((o) => isObj(o) && deepEqual(o[key], e[key]));
    if (e['$patch'] === 'delete') {
      if (i >= 0) out.splice(i, 1);
      continue;
    }
    const merged = strategicPatch(i >= 0 ? out[i] : undefined, e, path);
    if (merged === undefined) {
      if (i >= 0) out.splice(i, 1);
    } else if (i >= 0) out[i] = merged;
    else out.push(merged);
  }
  return out;
}

/** Stable: the listed elements in the order given, the others after them as they were. */
function reorder(list: Json[], order: Json[]): Json[] {
  const rank = (e: Json): number => {
    const i = order.findIndex((o) => (isObj(o) && isObj(e) ? Object.entries(o).every(([k, v]) => deepEqual(e[k], v)) : deepEqual(o, e)));
    return i < 0 ? order.length : i;
  };
  return list
    .map((e, i) => ({ e, i, r: rank(e) }))
    .sort((a, b) => a.r - b.r || a.i - b.i)
    .map((x) => x.e);
}

/**
 * A strategic merge patch (built-in kinds only): maps merge as in a merge patch, lists merge on
 * their keys (MERGE_KEYS), and the directives $patch, $retainKeys, $setElementOrder and
 * $deleteFromPrimitiveList are honoured.
 */
function strategicPatch(target: Json | undefined, patch: Json, path: string[] = []): Json | undefined {
  if (!isObj(patch)) return structuredClone(patch);
  const directive = patch['$patch'];
  if (directive === 'delete') return undefined;
  const base: JsonObject = directive === 'replace' || !isObj(target) ? {} : { ...target };
  for (const [k, v] of Object.entries(patch)) {
    if (k.startsWith('$')) continue;
    if (v === null) {
      delete base[k];
    } else if (Array.isArray(v)) {
      const key = mergeKeyOf(k, path, v, base[k]);
      if (key) base[k] = mergeList(base[k], v, key, [...path, k]);
      else if (PRIMITIVE_MERGE.has(k)) {
        const existing = base[k];
        const cur = Array.isArray(existing) ? [...existing] : [];
        for (const x of v) if (!cur.some((c) => deepEqual(c, x))) cur.push(x);
        base[k] = cur;
      } else base[k] = v.filter((e) => !(isObj(e) && '$patch' in e)).map((e) => structuredClone(e));
    } else {
      const r = strategicPatch(base[k], v, [...path, k]);
      if (r === undefined) delete base[k];
      else base[k] = r;
    }
  }
  for (const [k, v] of Object.entries(patch)) {
    if (!Array.isArray(v)) continue;
    const [directiveName, fieldName] = k.split('/', 2);
    const list = fieldName === undefined ? undefined : base[fieldName];
    if (fieldName === undefined || !Array.isArray(list)) continue;
    if (directiveName === '$setElementOrder') base[fieldName] = reorder(list, v);
    if (directiveName === '$deleteFromPrimitiveList') base[fieldName] = list.filter((x) => !v.some((d) => deepEqual(d, x)));
  }
  const retain = patch['$retainKeys'];
  if (Array.isArray(retain)) {
    for (const k of Object.keys(base)) if (!retain.includes(k)) delete base[k];
  }
  return base;
}

class PatchError extends Error {}

function pointer(path: string): string[] {
  if (path === '') return [];
  if (!path.startsWith('/')) throw new PatchError(`JSON pointer must be empty or start with a "/": ${q(path)}`);
  return path
    .slice(1)
    .split('/')
    .map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function containerAt(doc: Json, tokens: string[], op: string, path: string): Json {
  let cur: Json = doc;
  for (const t of tokens) {
    if (Array.isArray(cur)) {
      const i = Number(t);
      if (!/^\d+$/.test(t) || i >= cur.length) throw new PatchError(`${op} operation does not apply: doc is missing path: ${q(path)}: missing value`);
      cur = cur[i] ?? null;
    } else if (isObj(cur) && t in cur) cur = cur[t] ?? null;
    else throw new PatchError(`${op} operation does not apply: doc is missing path: ${q(path)}: missing value`);
  }
  return cur;
}

function jsonPatch(doc: Json, ops: Json): Json {
  if (!Array.isArray(ops)) throw badRequest('json: cannot unmarshal object into Go value of type jsonpatch.Patch');
  let root: Json = structuredClone(doc);
  const getAt = (path: string, op: string): Json => {
    const tokens = pointer(path);
    return containerAt(root, tokens, op, path);
  };
  const removeAt = (path: string, op: string): Json => {
    const tokens = pointer(path);
    const last = tokens.pop();
    if (last === undefined) throw new PatchError(`${op} operation does not apply: cannot remove the document root`);
    const parent = containerAt(root, tokens, op, path);
    if (Array.isArray(parent)) {
      const i = Number(last);
      if (!/^\d+$/.test(last) || i >= parent.length) throw new PatchError(`${op} operation does not apply: doc is missing path: ${q(path)}: missing value`);
      return parent.splice(i, 1)[0] ?? null;
    }
    if (isObj(parent) && last in parent) {
      const v = parent[last] ?? null;
      delete parent[last];
      return v;
    }
    throw new PatchError(`${op} operation does not apply: doc is missing path: ${q(path)}: missing value`);
  };
  const addAt = (path: string, value: Json, op: string, mustExist: boolean): void => {
    const tokens = pointer(path);
    const last = tokens.pop();
    if (last === undefined) {
      root = value;
      return;
    }
    const parent = containerAt(root, tokens, op, path);
    if (Array.isArray(parent)) {
      if (last === '-' && !mustExist) {
        parent.push(value);
        return;
      }
      const i = Number(last);
      if (!/^\d+$/.test(last) || i > parent.length || (mustExist && i >= parent.length)) throw new PatchError(`${op} operation does not apply: doc is missing path: ${q(path)}: missing value`);
      if (mustExist) parent[i] = value;
      else parent.splice(i, 0, value);
      return;
    }
    if (!isObj(parent)) throw new PatchError(`${op} operation does not apply: doc is missing path: ${q(path)}: missing value`);
    if (mustExist && !(last in parent)) throw new PatchError(`${op} operation does not apply: doc is missing key: ${path}: missing value`);
    parent[last] = value;
  };
  for (const op of ops) {
    if (!isObj(op)) throw badRequest('json: cannot unmarshal into Go value of type jsonpatch.Operation');
    const kind = strAt(op, 'op');
    const path = strAt(op, 'path');
    if (path === undefined) throw new PatchError(`${kind ?? 'unknown'} operation does not apply: doc is missing path: "": missing value`);
    const value = op['value'];
    switch (kind) {
      case 'add':
        if (value === undefined) throw new PatchError('add operation does not apply: missing value');
        addAt(path, structuredClone(value), 'add', false);
        break;
      case 'replace':
        if (value === undefined) throw new PatchError('replace operation does not apply: missing value');
        addAt(path, structuredClone(value), 'replace', true);
        break;
      case 'remove':
        removeAt(path, 'remove');
        break;
      case 'test': {
        const actual = getAt(path, 'test');
        if (!deepEqual(actual, value ?? null)) throw new PatchError(`testing value ${path} failed: test failed`);
        break;
      }
      case 'move': {
        const from = strAt(op, 'from') ?? '';
        addAt(path, removeAt(from, 'move'), 'move', false);
        break;
      }
      case 'copy': {
        const from = strAt(op, 'from') ?? '';
        addAt(path, structuredClone(getAt(from, 'copy')), 'copy', false);
        break;
      }
      default:
        throw new PatchError(`Unexpected kind: ${kind ?? ''}`);
    }
  }
  return root;
}

// ---------------------------------------------------------------------------------------------
// CRD schemas: structural pruning, defaulting and the common validations

function walkSchema(v: Json, s: JsonObject, path: string, causes: Cause[], root: boolean): Json | undefined {
  const at = path || '<root>';
  if (v === null) return s['nullable'] === true ? null : undefined;
  const type = strAt(s, 'type');
  const intOrString = s['x-kubernetes-int-or-string'] === true;
  const actual = typeName(v);
  const typeOk = intOrString
    ? actual === 'integer' || actual === 'string'
    : type === undefined || type === actual || (type === 'number' && actual === 'integer');
  if (!typeOk) {
    causes.push(invalidValue(at, actual, `${at} in body must be of type ${intOrString ? 'integer or string' : type ?? ''}: ${q(actual)}`));
    return v;
  }
  const en = s['enum'];
  if (Array.isArray(en) && !en.some((e) => deepEqual(e, v))) {
    causes.push({ field: at, reason: 'FieldValueNotSupported', message: `Unsupported value: ${valueString(v)}: supported values: ${en.map(valueString).join(', ')}` });
  }
  if (typeof v === 'number') {
    const min = s['minimum'];
    const max = s['maximum'];
    if (typeof min === 'number' && (s['exclusiveMinimum'] === true ? v <= min : v < min)) {
      causes.push(invalidValue(at, v, `${at} in body should be greater than ${s['exclusiveMinimum'] === true ? '' : 'or equal to '}${min}`));
    }
    if (typeof max === 'number' && (s['exclusiveMaximum'] === true ? v >= max : v > max)) {
      causes.push(invalidValue(at, v, `${at} in body should be less than ${s['exclusiveMaximum'] === true ? '' : 'or equal to '}${max}`));
    }
  }
  if (typeof v === 'string') {
    const minL = s['minLength'];
    const maxL = s['maxLength'];
    const pattern = strAt(s, 'pattern');
    if (typeof minL === 'number' && [...v].length < minL) causes.push(invalidValue(at, v, `${at} in body should be at least ${minL} chars long`));
    if (typeof maxL === 'number' && [...v].length > maxL) causes.push({ field: at, reason: 'FieldValueTooLong', message: `Too long: may not be longer than ${maxL}` });
    if (pattern !== undefined && !new RegExp(pattern, 'u').test(v)) causes.push(invalidValue(at, v, `${at} in body should match '${pattern}'`));
  }
  if (Array.isArray(v)) {
    const items = objAt(s, 'items');
    const out = items ? v.map((e, i) => walkSchema(e, items, `${path}[${i}]`, causes, false) ?? null) : v;
    const minI = s['minItems'];
    const maxI = s['maxItems'];
    if (typeof minI === 'number' && out.length < minI) causes.push(invalidValue(at, out.length, `${at} in body should have at least ${minI} items`));
    if (typeof maxI === 'number' && out.length > maxI) causes.push({ field: at, reason: 'FieldValueTooMany', message: `Too many: ${out.length}: must have at most ${maxI} items` });
    return out;
  }
  if (isObj(v)) {
    const props = objAt(s, 'properties');
    const additional = s['additionalProperties'];
    const preserve = s['x-kubernetes-preserve-unknown-fields'] === true;
    const embedded = s['x-kubernetes-embedded-resource'] === true;
    const out: JsonObject = {};
    for (const [k, val] of Object.entries(v)) {
      const sub = path ? `${path}.${k}` : k;
      const ps = objAt(props, k);
      if ((root || (embedded && !ps)) && (k === 'apiVersion' || k === 'kind' || k === 'metadata')) {
        // The object's own type and metadata are the server's, never pruned by the user's schema.
        out[k] = val;
      } else if (ps) {
        const r = walkSchema(val, ps, sub, causes, false);
        if (r !== undefined) out[k] = r;
      } else if (isObj(additional)) {
        const r = walkSchema(val, additional, sub, causes, false);
        if (r !== undefined) out[k] = r;
      } else if (additional === true || preserve) {
        out[k] = val;
      }
      // Otherwise pruned: the real server drops fields its structural schema does not know.
    }
    for (const [k, ps] of Object.entries(props ?? {})) {
      if (!(k in out) && isObj(ps) && ps['default'] !== undefined) out[k] = structuredClone(ps['default']);
    }
    const req = s['required'];
    if (Array.isArray(req)) for (const r of req) if (typeof r === 'string' && !(r in out)) causes.push(required(path ? `${path}.${r}` : r));
    const minP = s['minProperties'];
    const maxP = s['maxProperties'];
    const n = Object.keys(out).length;
    if (typeof minP === 'number' && n < minP) causes.push(invalidValue(at, n, `${at} in body should have at least ${minP} properties`));
    if (typeof maxP === 'number' && n > maxP) causes.push({ field: at, reason: 'FieldValueTooMany', message: `Too many: ${n}: must have at most ${maxP} items` });
    return out;
  }
  return v;
}

// ---------------------------------------------------------------------------------------------
// Built-in kinds: the defaults and checks of their registry strategies that matter here

function podQos(spec: JsonObject | undefined): string {
  const containers = [spec?.['containers'], spec?.['initContainers']].flatMap((c) => (Array.isArray(c) ? c : []));
  let any = false;
  let guaranteed = containers.length > 0;
  for (const c of containers) {
    const res = isObj(c) ? objAt(c, 'resources') : undefined;
    const req = objAt(res, 'requests') ?? {};
    const lim = objAt(res, 'limits') ?? {};
    for (const r of ['cpu', 'memory']) {
      if (req[r] !== undefined || lim[r] !== undefined) any = true;
      if (lim[r] === undefined || (req[r] !== undefined && !deepEqual(req[r], lim[r]))) guaranteed = false;
    }
  }
  return !any ? 'BestEffort' : guaranteed ? 'Guaranteed' : 'Burstable';
}

function syncPodCidrs(obj: JsonObject): void {
  const spec = objAt(obj, 'spec');
  if (!spec) return;
  const one = strAt(spec, 'podCIDR');
  const many = spec['podCIDRs'];
  if (one && !Array.isArray(many)) spec['podCIDRs'] = [one];
  else if (!one && Array.isArray(many) && typeof many[0] === 'string') spec['podCIDR'] = many[0];
}

function defaultNetworkPolicy(obj: JsonObject): void {
  const spec = objAt(obj, 'spec');
  if (!spec) {
    obj['spec'] = { podSelector: {}, policyTypes: ['Ingress'] };
    return;
  }
  if (!isObj(spec['podSelector'])) spec['podSelector'] = {};
  for (const dir of ['ingress', 'egress']) {
    const rules = spec[dir];
    if (!Array.isArray(rules)) continue;
    for (const rule of rules) {
      const ports = isObj(rule) ? rule['ports'] : undefined;
      if (Array.isArray(ports)) for (const p of ports) if (isObj(p) && p['protocol'] === undefined) p['protocol'] = 'TCP';
    }
  }
  if (!Array.isArray(spec['policyTypes'])) {
    const egress = spec['egress'];
    spec['policyTypes'] = Array.isArray(egress) && egress.length > 0 ? ['Ingress', 'Egress'] : ['Ingress'];
  }
}

function validateContainers(spec: JsonObject | undefined, path: string, causes: Cause[]): void {
  const containers = spec?.['containers'];
  if (!Array.isArray(containers) || containers.length === 0) {
    causes.push(required(`${path}.containers`));
    return;
  }
  containers.forEach((c, i) => {
    if (!isObj(c) || !strAt(c, 'name')) causes.push(required(`${path}.containers[${i}].name`));
    if (!isObj(c) || !strAt(c, 'image')) causes.push(required(`${path}.containers[${i}].image`));
  });
}

const POD_UPDATE_MSG =
  'pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)';

function podSpecSansMutable(spec: JsonObject | undefined): JsonObject {
  const s = without(spec ?? {}, ['activeDeadlineSeconds', 'tolerations', 'terminationGracePeriodSeconds']);
  for (const list of ['containers', 'initContainers']) {
    const cs = s[list];
    if (Array.isArray(cs)) s[list] = cs.map((c) => (isObj(c) ? without(c, ['image']) : c));
  }
  return s;
}

// ---------------------------------------------------------------------------------------------
// Watches

type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

interface StoredEvent {
  rev: number;
  type: EventType;
  store: string;
  ns: string;
  /** The object after the event; for DELETED its last state at the deletion's revision. */
  obj: JsonObject;
  prev: JsonObject | undefined;
}

interface Watcher {
  rd: ResourceDef;
  store: string;
  ns: string | undefined;
  labels: LabelReq[];
  fields: FieldReq[];
  res: ServerResponse;
  pending: string[];
  timers: NodeJS.Timeout[];
  closed: boolean;
}

function objectKey(ns: string, name: string): string {
  return `${ns}/${name}`;
}

/** Who asks: the admin token, or a service account's (serviceAccountToken). */
type User = 'admin' | { namespace: string; name: string };

interface Target {
  rd: ResourceDef;
  ns: string | undefined;
  name: string | undefined;
  sub: string | undefined;
}

type Negotiated = 'json' | 'discovery-v2' | 'discovery-v2beta1';

function negotiate(accept: string | undefined, discovery: boolean): Negotiated | undefined {
  if (!accept || accept.trim() === '') return 'json';
  for (const entry of accept.split(',')) {
    const [type = '', ...params] = entry.split(';').map((p) => p.trim());
    const p = new Map(
      params.map((x) => {
        const eq = x.indexOf('=');
        return eq < 0 ? [x.trim(), ''] : [x.slice(0, eq).trim(), x.slice(eq + 1).trim()];
      }),
    );
    const mt = type.toLowerCase();
    if (p.get('as') === 'APIGroupDiscoveryList' && p.get('g') === 'apidiscovery.k8s.io' && mt === 'application/json') {
      if (!discovery) continue;
      if (p.get('v') === 'v2') return 'discovery-v2';
      if (p.get('v') === 'v2beta1') return 'discovery-v2beta1';
      continue;
    }
    // Table and PartialObjectMetadata are not served: the client's next choice is.
    if (p.has('as')) continue;
    if (mt === 'application/json' || mt === 'application/*' || mt === '*/*') return 'json';
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------

export class KubeApiStandin {
  /** https://127.0.0.1:PORT (http:// when tls is false). */
  readonly url: string;
  readonly token: string;
  /** The server's self-signed certificate (PEM) when tls. */
  readonly caPem: string | undefined;
  /** Every request served, in order (for counting lists/watches in tests), 401s and failNext's included. */
  readonly requests: StandinRequest[] = [];
  /** How often watches with allowWatchBookmarks get a BOOKMARK (default 1000 ms; the real server ~1 min). */
  bookmarkIntervalMs = 1000;
  /** No bookmarks while set: a test that compacts needs watchers' revisions to stay behind it. */
  bookmarksHeld = false;

  private rev = 0;
  private compactedRev = 0;
  private readonly history: StoredEvent[] = [];
  private readonly store = new Map<string, Map<string, JsonObject>>();
  /** apiVersion → plural → definition; insertion order is discovery order. */
  private readonly resources = new Map<string, Map<string, ResourceDef>>();
  private readonly watchers = new Set<Watcher>();
  private paused = false;
  private readonly waiting: Array<() => void> = [];
  private failCount = 0;
  private failStatus: 429 | 500 | 503 = 500;
  private stopped = false;
  /** Tokens of service accounts (serviceAccountToken): their requests are authorized by RBAC. */
  private readonly accountTokens = new Map<string, { namespace: string; name: string }>();

  private constructor(
    private readonly server: Server,
    url: string,
    token: string,
    caPem: string | undefined,
    private readonly dir: string | undefined,
  ) {
    this.url = url;
    this.token = token;
    this.caPem = caPem;
    for (const rd of BUILTINS) this.register(rd);
    for (const ns of ['default', 'kube-system', 'kube-public', 'kube-node-lease']) {
      const namespaces = this.lookup('v1', 'namespaces');
      if (namespaces) this.create({ rd: namespaces, ns: undefined, name: undefined, sub: undefined }, { metadata: { name: ns } }, false);
    }
  }

  /** Listens on 127.0.0.1, a free port, or a unix socket; TLS (a fresh self-signed certificate) unless tls is false or on a socket. */
  static async start(o: StandinOptions = {}): Promise<KubeApiStandin> {
    const tls = o.socketPath === undefined && (o.tls ?? true);
    const token = o.token ?? randomBytes(24).toString('hex');
    let dir: string | undefined;
    let server: Server;
    let caPem: string | undefined;
    try {
      if (tls) {
        dir = mkdtempSync(join(tmpdir(), 'weft-kube-standin-'));
        const keyFile = join(dir, 'server.key');
        const certFile = join(dir, 'server.crt');
        await new Promise<void>((resolve, reject) => {
          execFile(
            'openssl',
            ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'],
            { timeout: 20_000 },
            (err, _stdout, stderr) => (err ? reject(new Error(`openssl could not make the stand-in's certificate: ${err.message} ${stderr}`)) : resolve()),
          );
        });
        caPem = readFileSync(certFile, 'utf8');
        server = createHttpsServer({ key: readFileSync(keyFile), cert: caPem });
      } else {
        server = createHttpServer();
      }
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        if (o.socketPath !== undefined) server.listen(o.socketPath, () => resolve());
        else server.listen(0, '127.0.0.1', () => resolve());
      });
    } catch (e) {
      if (dir) rmSync(dir, { recursive: true, force: true });
      throw e;
    }
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    const url = o.socketPath !== undefined ? `unix://${o.socketPath}` : `${tls ? 'https' : 'http'}://127.0.0.1:${port}`;
    const s = new KubeApiStandin(server, url, token, caPem, dir);
    server.on('request', (req: IncomingMessage, res: ServerResponse) => void s.handle(req, res));
    return s;
  }

  /**
   * Writes a kubeconfig (YAML) for kubectl and client libraries into dir; returns its path.
   * Its cluster carries certificate-authority-data, its user the token.
   */
  /**
   * A bearer token for the service account NAMESPACE/NAME (which need not exist): requests with it
   * are authorized by the RBAC objects stored here, as the real server's RBAC authorizer does
   * for a service account — the admin token (`token`) may do everything.
   */
  serviceAccountToken(namespace: string, name: string): string {
    const token = randomBytes(24).toString('hex');
    this.accountTokens.set(token, { namespace, name });
    return token;
  }

  writeKubeconfig(dir: string, o: { file?: string; token?: string } = {}): string {
    const cluster: Record<string, string | boolean> = { server: this.url };
    if (this.caPem) cluster['certificate-authority-data'] = Buffer.from(this.caPem).toString('base64');
    // Meaningless over plain HTTP, but client-node refuses an http:// server without it.
    else cluster['insecure-skip-tls-verify'] = true;
    const config = {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'standin', cluster }],
      users: [{ name: 'standin', user: { token: o.token ?? this.token } }],
      contexts: [{ name: 'standin', context: { cluster: 'standin', user: 'standin' } }],
      'current-context': 'standin',
      preferences: {},
    };
    const file = join(dir, o.file ?? 'kubeconfig');
    // It holds the token: readable by its owner only, as kubectl writes its own.
    writeFileSync(file, stringifyYaml(config), { mode: 0o600 });
    return file;
  }

  /** The current global revision (the last write's resourceVersion). */
  revision(): number {
    return this.rev;
  }

  /**
   * Forgets the event history up to and including `revision`: a watch from an older revision gets
   * 410 Expired (a watch from `revision` itself still works, as after an etcd compaction), and so
   * does a list at an older resourceVersion (Exact) or with an older continue token.
   */
  compact(revision: number): void {
    if (revision > this.rev) throw new Error(`cannot compact to a future revision ${revision} (current ${this.rev})`);
    this.compactedRev = Math.max(this.compactedRev, revision);
    let drop = 0;
    while (drop < this.history.length && (this.history[drop]?.rev ?? 0) <= this.compactedRev) drop++;
    this.history.splice(0, drop);
  }

  /** Ends every open watch stream abruptly (destroys the sockets). */
  dropWatches(): void {
    for (const w of [...this.watchers]) this.closeWatch(w, true);
  }

  /** New requests wait (and open watches deliver nothing) until resume(). */
  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    for (const w of this.watchers) {
      const lines = w.pending.splice(0);
      for (const l of lines) w.res.write(l);
    }
    for (const release of this.waiting.splice(0)) release();
  }

  /**
   * The next `count` requests (watches and unauthenticated ones included) are answered with this
   * status (429 carries Retry-After: 1).
   */
  failNext(count: number, status: 429 | 500 | 503): void {
    this.failCount = count;
    this.failStatus = status;
  }

  /** Ends every connection, stops listening and removes the certificate's temp dir. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.paused = false;
    for (const release of this.waiting.splice(0)) release();
    for (const w of [...this.watchers]) this.closeWatch(w, true);
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }

  // -------------------------------------------------------------------------------------------
  // Registry

  private register(rd: ResourceDef): void {
    const gv = apiVersionOf(rd);
    let m = this.resources.get(gv);
    if (!m) {
      m = new Map();
      this.resources.set(gv, m);
    }
    m.set(rd.plural, rd);
    if (!this.store.has(storeKeyOf(rd))) this.store.set(storeKeyOf(rd), new Map());
  }

  private lookup(apiVersion: string, plural: string): ResourceDef | undefined {
    return this.resources.get(apiVersion)?.get(plural);
  }

  private bucket(rd: ResourceDef): Map<string, JsonObject> {
    let b = this.store.get(storeKeyOf(rd));
    if (!b) {
      b = new Map();
      this.store.set(storeKeyOf(rd), b);
    }
    return b;
  }

  /** Groups in discovery order: the built-ins as listed, then custom groups by name. */
  private groups(): Array<{ name: string; versions: string[] }> {
    const builtinGroups: string[] = [];
    for (const rd of BUILTINS) if (rd.group && !builtinGroups.includes(rd.group)) builtinGroups.push(rd.group);
    const byGroup = new Map<string, Set<string>>();
    for (const gvMap of this.resources.values()) {
      for (const rd of gvMap.values()) {
        if (!rd.group) continue;
        const s = byGroup.get(rd.group) ?? new Set<string>();
        s.add(rd.version);
        byGroup.set(rd.group, s);
      }
    }
    const names = [...byGroup.keys()].sort((a, b) => {
      const [ia, ib] = [builtinGroups.indexOf(a), builtinGroups.indexOf(b)];
      if (ia >= 0 || ib >= 0) return (ia < 0 ? 1e9 : ia) - (ib < 0 ? 1e9 : ib);
      return a.localeCompare(b);
    });
    return names.map((name) => ({ name, versions: [...(byGroup.get(name) ?? [])].sort(compareVersions) }));
  }

  // -------------------------------------------------------------------------------------------
  // HTTP

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (this.paused) await new Promise<void>((resolve) => this.waiting.push(resolve));
    if (this.stopped) {
      res.socket?.destroy();
      return;
    }
    const url = new URL(req.url ?? '/', 'http://standin');
    const watchParam = url.searchParams.get('watch');
    const rec: StandinRequest = {
      method: req.method ?? 'GET',
      path: url.pathname,
      query: url.search.replace(/^\?/, ''),
      status: 0,
      watch: watchParam === 'true' || watchParam === '1' || /^\/apis?\/(.+\/)?watch\//.test(url.pathname),
      userAgent: req.headers['user-agent'] ?? '',
    };
    try {
      if (this.failCount > 0) {
        this.failCount--;
        throw this.injected(this.failStatus);
      }
      const user = this.authenticated(req);
      if (!user) throw new ApiError(401, 'Unauthorized', 'Unauthorized');
      await this.route(req, res, url, rec, user);
    } catch (e) {
      const err = e instanceof ApiError ? e : new ApiError(500, 'InternalError', `Internal error occurred: ${e instanceof Error ? e.message : String(e)}`, { causes: [{ message: e instanceof Error ? e.message : String(e) }] });
      if (res.headersSent) {
        res.destroy();
        return;
      }
      this.reply(res, rec, err.code, err.status(), err.headers);
    }
  }

  private injected(status: 429 | 500 | 503): ApiError {
    switch (status) {
      case 429:
        return new ApiError(429, 'TooManyRequests', 'Too many requests, please try again later.', { retryAfterSeconds: 1 }, { 'Retry-After': '1' });
      case 500:
        return new ApiError(500, 'InternalError', 'Internal error occurred: injected by the test stand-in', { causes: [{ message: 'injected by the test stand-in' }] });
      case 503:
        return new ApiError(503, 'ServiceUnavailable', 'the server is currently unable to handle the request (injected by the test stand-in)', {});
    }
  }

  /** The admin, a service account (by its token), or nobody (401). */
  private authenticated(req: IncomingMessage): User | undefined {
    const h = req.headers.authorization ?? '';
    const m = /^Bearer (.+)$/i.exec(h.trim());
    if (!m || m[1] === undefined) return undefined;
    const given = Buffer.from(m[1]);
    const want = Buffer.from(this.token);
    if (given.length === want.length && timingSafeEqual(given, want)) return 'admin';
    return this.accountTokens.get(m[1]);
  }

  /**
   * RBAC for a service account, as the real authorizer decides: the rules of every ClusterRole a
   * ClusterRoleBinding gives it, anywhere; of every Role or ClusterRole a RoleBinding in the
   * request's namespace gives it, there. A rule allows when its apiGroups, resources ("pods",
   * "pods/status") and verbs match (or are "*"), and its resourceNames, if any, name the object.
   */
  private authorize(user: User, verb: string, t: Target): void {
    if (user === 'admin') return;
    const resource = t.sub ? `${t.rd.plural}/${t.sub}` : t.rd.plural;
    const isSubject = (b: JsonObject): boolean =>
      arrAt(b, 'subjects')?.some((x) => isObj(x) && strAt(x, 'kind') === 'ServiceAccount' && strAt(x, 'name') === user.name && strAt(x, 'namespace') === user.namespace) ?? false;
    const rulesOf = (kind: string, name: string, ns: string | undefined): Json[] => {
      const rd = this.lookup('rbac.authorization.k8s.io/v1', kind === 'Role' ? 'roles' : 'clusterroles');
      const role = rd ? this.bucket(rd).get(objectKey(kind === 'Role' ? (ns ?? '') : '', name)) : undefined;
      return (role && arrAt(role, 'rules')) ?? [];
    };
    const bindings = (plural: string): JsonObject[] => {
      const rd = this.lookup('rbac.authorization.k8s.io/v1', plural);
      return rd ? [...this.bucket(rd).values()] : [];
    };
    const rules: Json[] = [];
    for (const b of bindings('clusterrolebindings')) if (isSubject(b)) rules.push(...rulesOf('ClusterRole', strAt(objAt(b, 'roleRef'), 'name') ?? '', undefined));
    if (t.ns !== undefined) {
      for (const b of bindings('rolebindings')) {
        if (strAt(metaOf(b), 'namespace') !== t.ns || !isSubject(b)) continue;
        const ref = objAt(b, 'roleRef');
        rules.push(...rulesOf(strAt(ref, 'kind') ?? '', strAt(ref, 'name') ?? '', t.ns));
      }
    }
    const has = (r: JsonObject, field: string, v: string): boolean => arrAt(r, field)?.some((x) => x === v || x === '*') ?? false;
    const allowed = rules.some((r) => {
      if (!isObj(r) || !has(r, 'apiGroups', t.rd.group) || !has(r, 'resources', resource) || !has(r, 'verbs', verb)) return false;
      const names = arrAt(r, 'resourceNames') ?? [];
      return names.length === 0 || (t.name !== undefined && names.includes(t.name));
    });
    if (allowed) return;
    const who = `system:serviceaccount:${user.namespace}:${user.name}`;
    const where = t.ns !== undefined ? `in the namespace "${t.ns}"` : 'at the cluster scope';
    const what = t.name !== undefined ? `${qualifiedResource(t.rd)} "${t.name}"` : qualifiedResource(t.rd);
    throw new ApiError(403, 'Forbidden', `${what} is forbidden: User "${who}" cannot ${verb} resource "${resource}" in API group "${t.rd.group}" ${where}`, {
      ...(t.name !== undefined ? { name: t.name } : {}),
      group: t.rd.group,
      kind: t.rd.plural,
    });
  }

  private reply(res: ServerResponse, rec: StandinRequest, code: number, body: Json, headers: Record<string, string> = {}, contentType = 'application/json'): void {
    const text = JSON.stringify(body);
    rec.status = code;
    this.requests.push(rec);
    res.writeHead(code, {
      'Content-Type': contentType,
      'Content-Length': Buffer.byteLength(text),
      'Cache-Control': 'no-cache, private',
      'Audit-Id': randomUUID(),
      ...headers,
    });
    res.end(text);
  }

  private async readBody(req: IncomingMessage): Promise<Buffer> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req as AsyncIterable<unknown>) {
      const b = chunk instanceof Buffer ? chunk : Buffer.from(String(chunk));
      size += b.length;
      if (size > BODY_LIMIT) throw new ApiError(413, 'RequestEntityTooLarge', `Request entity too large: limit is ${BODY_LIMIT}`);
      chunks.push(b);
    }
    return Buffer.concat(chunks);
  }

  private parseBody(raw: Buffer, contentType: string | undefined, accepted: string[]): Json {
    const mt = (contentType ?? 'application/json').split(';')[0]?.trim().toLowerCase() ?? '';
    const text = raw.toString('utf8');
    try {
      if (mt === 'application/yaml' || mt === 'application/apply-patch+yaml') {
        return toJson(parseYaml(text));
      }
      if (mt === 'application/json' || mt.endsWith('+json') || mt === '') {
        return toJson(JSON.parse(text));
      }
    } catch (e) {
      throw badRequest(`couldn't get version/kind; json parse error: ${e instanceof Error ? e.message : String(e)}`);
    }
    throw unsupportedMedia(accepted);
  }

  private async route(req: IncomingMessage, res: ServerResponse, url: URL, rec: StandinRequest, user: User): Promise<void> {
    const method = req.method ?? 'GET';
    let segs: string[];
    try {
      segs = url.pathname.split('/').filter((s) => s !== '').map((s) => decodeURIComponent(s));
    } catch {
      throw notFoundPath();
    }
    const accept = req.headers.accept;
    if (segs.length === 1 && ['healthz', 'livez', 'readyz'].includes(segs[0] ?? '')) {
      rec.status = 200;
      this.requests.push(rec);
      res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
      res.end('ok');
      return;
    }
    // OpenAPI before content negotiation: kubectl asks for v2 in protobuf, and gets the 404 it copes with.
    if (segs[0] === 'openapi') {
      if (method !== 'GET') throw methodNotAllowed();
      return this.openapi(res, rec, segs.slice(1));
    }
    // Aggregated discovery is asked of /api and /apis only.
    const isDiscovery = method === 'GET' && (segs[0] === 'api' || segs[0] === 'apis') && segs.length === 1;
    const format = negotiate(accept, isDiscovery);
    if (!format) throw new ApiError(406, 'NotAcceptable', 'only the following media types are accepted: application/json', {});
    if (segs[0] === 'version' && segs.length === 1) {
      if (method !== 'GET') throw methodNotAllowed();
      return this.reply(res, rec, 200, {
        major: '1',
        minor: '30',
        gitVersion: GIT_VERSION,
        gitCommit: '7c48c2bd72b9bf5c44d21d7338cc7bea77d0ad2a',
        gitTreeState: 'clean',
        buildDate: '2024-04-17T17:27:03Z',
        goVersion: 'go1.22.2',
        compiler: 'gc',
        platform: 'linux/amd64',
      });
    }
    let apiVersion: string;
    let rest: string[];
    if (segs[0] === 'api') {
      if (segs.length === 1) {
        if (method !== 'GET') throw methodNotAllowed();
        if (format !== 'json') return this.replyAggregated(res, rec, format, true);
        const port = new URL(this.url).host;
        return this.reply(res, rec, 200, { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: port }] });
      }
      apiVersion = segs[1] ?? '';
      rest = segs.slice(2);
    } else if (segs[0] === 'apis') {
      if (segs.length === 1) {
        if (method !== 'GET') throw methodNotAllowed();
        if (format !== 'json') return this.replyAggregated(res, rec, format, false);
        return this.reply(res, rec, 200, { kind: 'APIGroupList', apiVersion: 'v1', groups: this.groups().map((g) => this.groupJson(g)) });
      }
      if (segs.length === 2) {
        const g = this.groups().find((x) => x.name === segs[1]);
        if (!g) throw notFoundPath();
        if (method !== 'GET') throw methodNotAllowed();
        return this.reply(res, rec, 200, { kind: 'APIGroup', apiVersion: 'v1', ...this.groupJson(g) });
      }
      apiVersion = `${segs[1] ?? ''}/${segs[2] ?? ''}`;
      rest = segs.slice(3);
    } else {
      throw notFoundPath();
    }
    const gv = this.resources.get(apiVersion);
    if (!gv || gv.size === 0) throw notFoundPath();
    if (rest.length === 0) {
      if (method !== 'GET') throw methodNotAllowed();
      return this.reply(res, rec, 200, { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: apiVersion, resources: [...gv.values()].flatMap((rd) => this.resourceJson(rd)) });
    }
    // The deprecated /watch/ prefix is a watch of the same path.
    let watchPath = false;
    if (rest[0] === 'watch') {
      watchPath = true;
      rest = rest.slice(1);
    }
    let ns: string | undefined;
    if (rest[0] === 'namespaces' && rest.length >= 3 && gv.get(rest[2] ?? '')?.namespaced) {
      ns = rest[1];
      rest = rest.slice(2);
    }
    const rd = gv.get(rest[0] ?? '');
    if (!rd || rest.length > 3) throw notFoundPath();
    if (ns === undefined && rd.namespaced && rest.length > 1) throw notFoundPath();
    const t: Target = { rd, ns, name: rest[1], sub: rest[2] };
    if (t.sub !== undefined && !(t.sub === 'status' && rd.status)) throw notFoundPath();
    const query = url.searchParams;
    const dryRun = query.getAll('dryRun');
    for (const d of dryRun) if (d !== 'All') throw badRequest(`Invalid dry run value: ${d}`);
    const dry = dryRun.length > 0;
    const wantsWatch = watchPath || rec.watch;
    const verbs: Record<string, string> = { POST: 'create', PUT: 'update', PATCH: 'patch', DELETE: 'delete' };
    this.authorize(user, method === 'GET' ? (wantsWatch ? 'watch' : t.name === undefined ? 'list' : 'get') : (verbs[method] ?? method.toLowerCase()), t);

    if (t.name === undefined) {
      if (method === 'GET') return wantsWatch ? this.watch(res, rec, t, query) : this.reply(res, rec, 200, this.list(t, query));
      if (method === 'POST') {
        if (rd.namespaced && ns === undefined) throw methodNotAllowed();
        const body = this.parseBody(await this.readBody(req), req.headers['content-type'], ['application/json', 'application/yaml']);
        const created = this.create(t, body, dry);
        return this.reply(res, rec, 201, created);
      }
      throw methodNotAllowed();
    }
    switch (method) {
      case 'GET': {
        if (wantsWatch && t.sub === undefined) {
          query.set('fieldSelector', [query.get('fieldSelector'), `metadata.name=${t.name}`].filter((x) => x).join(','));
          return this.watch(res, rec, { ...t, name: undefined }, query);
        }
        const obj = this.bucket(rd).get(objectKey(ns ?? '', t.name));
        if (!obj) throw notFound(rd, t.name);
        return this.reply(res, rec, 200, this.output(rd, obj));
      }
      case 'PUT': {
        const body = this.parseBody(await this.readBody(req), req.headers['content-type'], ['application/json', 'application/yaml']);
        if (!isObj(body)) throw badRequest('the body of the request is not an object');
        return this.reply(res, rec, 200, this.update(t, () => body, dry));
      }
      case 'PATCH': {
        const ct = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
        const accepted = rd.crd ? ['application/json-patch+json', 'application/merge-patch+json'] : ['application/json-patch+json', 'application/merge-patch+json', 'application/strategic-merge-patch+json'];
        // No server-side apply here; custom resources take no strategic merge patch, as in the real server.
        if (!accepted.includes(ct)) throw unsupportedMedia(accepted);
        const patch = this.parseBody(await this.readBody(req), ct, accepted);
        return this.reply(res, rec, 200, this.update(t, (cur) => this.applyPatch(ct, cur, patch), dry, true));
      }
      case 'DELETE': {
        if (t.sub !== undefined) throw methodNotAllowed();
        const raw = await this.readBody(req);
        const opts = raw.length > 0 ? this.parseBody(raw, req.headers['content-type'], ['application/json', 'application/yaml']) : {};
        return this.reply(res, rec, 200, this.delete(t, isObj(opts) ? opts : {}, dry));
      }
      default:
        throw methodNotAllowed();
    }
  }

  private applyPatch(ct: string, cur: JsonObject, patch: Json): JsonObject {
    let out: Json | undefined;
    try {
      if (ct === 'application/json-patch+json') out = jsonPatch(cur, patch);
      else if (ct === 'application/merge-patch+json') {
        if (!isObj(patch)) throw badRequest('json: cannot unmarshal non-object into Go value of type map[string]interface {}');
        out = mergePatch(cur, patch);
      } else {
        if (!isObj(patch)) throw badRequest('json: cannot unmarshal non-object into Go value of type map[string]interface {}');
        out = strategicPatch(cur, patch);
      }
    } catch (e) {
      if (e instanceof PatchError) {
        throw new ApiError(422, 'Invalid', 'the server rejected our request due to an error in our request', { causes: [{ reason: 'UnexpectedServerResponse', message: e.message }] });
      }
      throw e;
    }
    if (!isObj(out)) throw badRequest('the patched object is not an object');
    return out;
  }

  // -------------------------------------------------------------------------------------------
  // Discovery and OpenAPI

  private groupJson(g: { name: string; versions: string[] }): JsonObject {
    const versions = g.versions.map((v) => ({ groupVersion: `${g.name}/${v}`, version: v }));
    return { name: g.name, versions, preferredVersion: versions[0] ?? null };
  }

  private resourceJson(rd: ResourceDef): JsonObject[] {
    const main: JsonObject = { name: rd.plural, singularName: rd.singular, namespaced: rd.namespaced, kind: rd.kind, verbs: VERBS };
    if (rd.shortNames.length) main['shortNames'] = rd.shortNames;
    if (rd.categories.length) main['categories'] = rd.categories;
    main['storageVersionHash'] = createHash('sha256').update(`${rd.group}/${rd.version}/${rd.kind}`).digest('base64').slice(0, 11);
    const out = [main];
    if (rd.status) out.push({ name: `${rd.plural}/status`, singularName: '', namespaced: rd.namespaced, kind: rd.kind, verbs: STATUS_VERBS });
    return out;
  }

  private replyAggregated(res: ServerResponse, rec: StandinRequest, format: Negotiated, core: boolean): void {
    const version = format === 'discovery-v2' ? 'v2' : 'v2beta1';
    const groupDoc = (name: string, versions: string[]): JsonObject => ({
      metadata: core ? { creationTimestamp: null } : { name, creationTimestamp: null },
      versions: versions.map((v) => ({
        version: v,
        resources: [...(this.resources.get(name ? `${name}/${v}` : v)?.values() ?? [])].map((rd) => {
          const r: JsonObject = {
            resource: rd.plural,
            responseKind: { group: rd.group, version: rd.version, kind: rd.kind },
            scope: rd.namespaced ? 'Namespaced' : 'Cluster',
            singularResource: rd.singular,
            verbs: VERBS,
          };
          if (rd.shortNames.length) r['shortNames'] = rd.shortNames;
          if (rd.categories.length) r['categories'] = rd.categories;
          if (rd.status) r['subresources'] = [{ subresource: 'status', responseKind: { group: rd.group, version: rd.version, kind: rd.kind }, verbs: STATUS_VERBS }];
          return r;
        }),
        freshness: 'Current',
      })),
    });
    const items = core ? [groupDoc('', ['v1'])] : this.groups().map((g) => groupDoc(g.name, g.versions));
    const body: JsonObject = { kind: 'APIGroupDiscoveryList', apiVersion: `apidiscovery.k8s.io/${version}`, metadata: {}, items };
    const etag = createHash('sha256').update(JSON.stringify(body)).digest('hex').slice(0, 32);
    this.reply(res, rec, 200, body, { ETag: `"${etag}"`, Vary: 'Accept' }, `application/json;g=apidiscovery.k8s.io;v=${version};as=APIGroupDiscoveryList`);
  }

  /** The OpenAPI v3 kubectl reads before writing: which PATCH operations take fieldValidation. */
  private openapiDoc(apiVersion: string): JsonObject | undefined {
    const gv = this.resources.get(apiVersion);
    if (!gv || gv.size === 0) return undefined;
    const paths: JsonObject = {};
    const base = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
    for (const rd of gv.values()) {
      const p = rd.namespaced ? `${base}/namespaces/{namespace}/${rd.plural}/{name}` : `${base}/${rd.plural}/{name}`;
      paths[p] = {
        patch: {
          operationId: `patch${rd.kind}`,
          parameters: [
            { name: 'dryRun', in: 'query', schema: { type: 'string', uniqueItems: true } },
            { name: 'fieldManager', in: 'query', schema: { type: 'string', uniqueItems: true } },
            { name: 'fieldValidation', in: 'query', schema: { type: 'string', uniqueItems: true } },
          ],
          responses: { '200': { description: 'OK' } },
          'x-kubernetes-action': 'patch',
          'x-kubernetes-group-version-kind': { group: rd.group, version: rd.version, kind: rd.kind },
        },
      };
    }
    return { openapi: '3.0.0', info: { title: 'Kubernetes', version: GIT_VERSION }, paths, components: {} };
  }

  private openapi(res: ServerResponse, rec: StandinRequest, rest: string[]): void {
    if (rest[0] !== 'v3') throw notFoundPath();
    if (rest.length === 1) {
      const paths: JsonObject = {};
      for (const apiVersion of this.resources.keys()) {
        const doc = this.openapiDoc(apiVersion);
        if (!doc) continue;
        const key = apiVersion.includes('/') ? `apis/${apiVersion}` : `api/${apiVersion}`;
        const hash = createHash('sha512').update(JSON.stringify(doc)).digest('hex').toUpperCase();
        paths[key] = { serverRelativeURL: `/openapi/v3/${key}?hash=${hash}` };
      }
      return this.reply(res, rec, 200, { paths });
    }
    const apiVersion = rest[1] === 'api' ? rest.slice(2).join('/') : rest[1] === 'apis' ? rest.slice(2).join('/') : '';
    const doc = this.openapiDoc(apiVersion);
    if (!doc) throw notFoundPath();
    this.reply(res, rec, 200, doc);
  }

  // -------------------------------------------------------------------------------------------
  // Objects

  private output(rd: ResourceDef, obj: JsonObject): JsonObject {
    return { kind: rd.kind, apiVersion: apiVersionOf(rd), ...structuredClone(obj) };
  }

  private checkTypeMeta(rd: ResourceDef, body: JsonObject): void {
    const kind = body['kind'];
    const apiVersion = body['apiVersion'];
    if (rd.crd && (kind === undefined || kind === '')) throw badRequest(`Object 'Kind' is missing in '${JSON.stringify(body)}'`);
    if (rd.crd && (apiVersion === undefined || apiVersion === '')) throw badRequest(`Object 'apiVersion' is missing in '${JSON.stringify(body)}'`);
    if (apiVersion !== undefined && apiVersion !== '' && apiVersion !== apiVersionOf(rd)) {
      throw badRequest(`the API version in the data (${String(apiVersion)}) does not match the expected API version (${apiVersionOf(rd)})`);
    }
    if (kind !== undefined && kind !== '' && kind !== rd.kind) {
      throw badRequest(`the kind in the data (${String(kind)}) does not match the expected kind (${rd.kind})`);
    }
  }

  /** As rest.EnsureObjectNamespaceMatchesRequestNamespace. */
  private resolveNamespace(rd: ResourceDef, requestNs: string | undefined, m: JsonObject): string {
    const expected = rd.namespaced ? requestNs ?? '' : '';
    const given = strAt(m, 'namespace') ?? '';
    if (given === expected || given === '' || expected === '') {
      if (expected === '') delete m['namespace'];
      else m['namespace'] = expected;
      return expected;
    }
    throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
  }

  private requireNamespace(ns: string): void {
    const namespaces = this.lookup('v1', 'namespaces');
    if (namespaces && !this.bucket(namespaces).has(objectKey('', ns))) {
      throw new ApiError(404, 'NotFound', `namespaces ${q(ns)} not found`, { name: ns, kind: 'namespaces' });
    }
  }

  /** POST: as the real create handler, admission (the namespace exists), strategy and storage. */
  private create(t: Target, body: Json, dry: boolean): JsonObject {
    const rd = t.rd;
    if (!isObj(body)) throw badRequest('the body of the request is not an object');
    this.checkTypeMeta(rd, body);
    checkStringMaps(body);
    const obj = without(structuredClone(body), ['kind', 'apiVersion']);
    const m = metaOf(obj);
    const ns = this.resolveNamespace(rd, t.ns, m);
    if (rd.namespaced) this.requireNamespace(ns);
    const rv = strAt(m, 'resourceVersion');
    // An error that is not an API error in the real server: 500 with no reason.
    if (rv !== undefined && /^\d+$/.test(rv) && Number(rv) !== 0) throw new ApiError(500, '', 'resourceVersion should not be set on objects to be created');
    for (const k of ['resourceVersion', 'uid', 'creationTimestamp', 'deletionTimestamp', 'deletionGracePeriodSeconds', 'selfLink', 'managedFields', 'generation']) delete m[k];
    const bucket = this.bucket(rd);
    const generateName = strAt(m, 'generateName');
    if (!strAt(m, 'name') && generateName) {
      const alphabet = 'bcdfghjklmnpqrstvwxz2456789';
      for (let i = 0; i < 8; i++) {
        const name = generateName + Array.from(randomBytes(5), (b) => alphabet[b % alphabet.length]).join('');
        m['name'] = name;
        if (!bucket.has(objectKey(ns, name))) break;
      }
    }
    m['uid'] = randomUUID();
    m['creationTimestamp'] = now();
    m['generation'] = 1;
    this.prepare(rd, obj, undefined);
    const name = strAt(m, 'name') ?? '';
    this.validate(rd, obj, undefined);
    if (bucket.has(objectKey(ns, name))) {
      throw new ApiError(409, 'AlreadyExists', `${qualifiedResource(rd)} ${q(name)} already exists`, resourceDetails(rd, name));
    }
    if (dry) return this.output(rd, obj);
    this.commit(rd, 'ADDED', ns, name, obj, undefined);
    const out = this.output(rd, obj);
    if (rd.group === 'apiextensions.k8s.io' && rd.plural === 'customresourcedefinitions') this.syncCrd(name);
    return out;
  }

  /** Kind-specific defaulting (PrepareForCreate/PrepareForUpdate and defaulters). */
  private prepare(rd: ResourceDef, obj: JsonObject, old: JsonObject | undefined): void {
    const m = metaOf(obj);
    const isCore = rd.group === '' && !rd.crd;
    if (isCore && rd.plural === 'namespaces') {
      const labels = objAt(m, 'labels') ?? {};
      labels['kubernetes.io/metadata.name'] = strAt(m, 'name') ?? '';
      m['labels'] = labels;
      if (!old) {
        const spec = objAt(obj, 'spec') ?? {};
        if (!Array.isArray(spec['finalizers'])) spec['finalizers'] = ['kubernetes'];
        obj['spec'] = spec;
        obj['status'] = { phase: 'Active' };
      }
    } else if (isCore && rd.plural === 'pods') {
      if (!old) obj['status'] = { phase: 'Pending', qosClass: podQos(objAt(obj, 'spec')) };
    } else if (isCore && rd.plural === 'nodes') {
      syncPodCidrs(obj);
    } else if (rd.group === 'networking.k8s.io' && rd.plural === 'networkpolicies') {
      defaultNetworkPolicy(obj);
    } else if (rd.group === 'apps' && rd.plural === 'daemonsets') {
      if (!old) obj['status'] = { currentNumberScheduled: 0, numberMisscheduled: 0, desiredNumberScheduled: 0, numberReady: 0 };
    } else if (rd.group === 'apiextensions.k8s.io' && rd.plural === 'customresourcedefinitions') {
      const names = objAt(objAt(obj, 'spec'), 'names');
      const kind = strAt(names, 'kind');
      if (names && kind) {
        if (!strAt(names, 'singular')) names['singular'] = kind.toLowerCase();
        if (!strAt(names, 'listKind')) names['listKind'] = `${kind}List`;
      }
      if (!old) obj['status'] = { acceptedNames: { kind: '', plural: '' }, conditions: [], storedVersions: [] };
    } else if (rd.crd && rd.status && !old) {
      // Status is written through its subresource only.
      delete obj['status'];
    }
  }

  private validate(rd: ResourceDef, obj: JsonObject, old: JsonObject | undefined): void {
    const causes: Cause[] = [];
    validateMeta(rd, obj, causes);
    const spec = objAt(obj, 'spec');
    const isCore = rd.group === '' && !rd.crd;
    if (rd.crd && rd.schema) {
      const walked = walkSchema(obj, rd.schema, '', causes, true);
      if (isObj(walked)) {
        for (const k of Object.keys(obj)) if (!(k in walked)) delete obj[k];
        Object.assign(obj, walked);
      }
    } else if (isCore && rd.plural === 'pods') {
      validateContainers(spec, 'spec', causes);
      if (old && !deepEqual(podSpecSansMutable(spec), podSpecSansMutable(objAt(old, 'spec')))) causes.push(forbidden('spec', POD_UPDATE_MSG));
    } else if (isCore && rd.plural === 'nodes' && old) {
      const oldSpec = objAt(old, 'spec');
      const oldCidrs = oldSpec?.['podCIDRs'];
      if (Array.isArray(oldCidrs) && oldCidrs.length > 0 && !deepEqual(oldCidrs, spec?.['podCIDRs'])) {
        causes.push(forbidden('spec.podCIDRs', 'node updates may not change podCIDR except from "" to valid'));
      }
      const oldProvider = strAt(oldSpec, 'providerID');
      if (oldProvider && oldProvider !== strAt(spec, 'providerID')) causes.push(forbidden('spec.providerID', 'node updates may not change providerID except from "" to valid'));
    } else if (isCore && rd.plural === 'services') {
      const ports = spec?.['ports'];
      if (strAt(spec, 'type') !== 'ExternalName' && strAt(spec, 'clusterIP') !== 'None' && (!Array.isArray(ports) || ports.length === 0)) causes.push(required('spec.ports'));
    } else if (rd.group === 'apps' && rd.plural === 'daemonsets') {
      const selector = objAt(spec, 'selector');
      const template = objAt(spec, 'template');
      if (!selector) causes.push(required('spec.selector'));
      else {
        const labels = objAt(objAt(template, 'metadata'), 'labels');
        const wanted = objAt(selector, 'matchLabels') ?? {};
        if (!Object.entries(wanted).every(([k, v]) => labels?.[k] === v)) causes.push(invalidValue('spec.template.metadata.labels', labels ?? {}, '`selector` does not match template `labels`'));
      }
      validateContainers(objAt(template, 'spec'), 'spec.template.spec', causes);
    } else if (rd.group === 'apiextensions.k8s.io' && rd.plural === 'customresourcedefinitions') {
      this.validateCrd(obj, old, causes);
    }
    if (causes.length) throw invalid(rd, strAt(metaOf(obj), 'name') ?? '', causes);
  }

  private validateCrd(obj: JsonObject, old: JsonObject | undefined, causes: Cause[]): void {
    const spec = objAt(obj, 'spec');
    const group = strAt(spec, 'group') ?? '';
    const names = objAt(spec, 'names');
    const plural = strAt(names, 'plural') ?? '';
    const name = strAt(metaOf(obj), 'name') ?? '';
    if (!group) causes.push(required('spec.group'));
    else if (!group.includes('.')) causes.push(invalidValue('spec.group', group, 'should be a domain with at least one dot'));
    if (!plural) causes.push(required('spec.names.plural'));
    else for (const p of nameProblems('label', plural)) causes.push(invalidValue('spec.names.plural', plural, p));
    if (!strAt(names, 'kind')) causes.push(required('spec.names.kind'));
    if (group && plural && name !== `${plural}.${group}`) causes.push(invalidValue('metadata.name', name, 'must be spec.names.plural+"."+spec.group'));
    const annotations = objAt(metaOf(obj), 'annotations');
    if ((group.endsWith('.k8s.io') || group.endsWith('.kubernetes.io')) && !strAt(annotations, 'api-approved.kubernetes.io')) {
      causes.push(required('metadata.annotations[api-approved.kubernetes.io]', 'protected groups must have approval annotation "api-approved.kubernetes.io", see https://github.com/kubernetes/enhancements/pull/1111'));
    }
    const scope = strAt(spec, 'scope');
    if (scope !== 'Namespaced' && scope !== 'Cluster') causes.push({ field: 'spec.scope', reason: 'FieldValueNotSupported', message: `Unsupported value: ${q(scope ?? '')}: supported values: "Cluster", "Namespaced"` });
    const versions = spec?.['versions'];
    if (!Array.isArray(versions) || versions.length === 0) causes.push(required('spec.versions', 'must have exactly one version marked as storage version'));
    else {
      if (versions.filter((v) => isObj(v) && v['storage'] === true).length !== 1) causes.push(invalidValue('spec.versions', null, 'must have exactly one version marked as storage version'));
      const seen = new Set<string>();
      versions.forEach((v, i) => {
        const vn = isObj(v) ? strAt(v, 'name') ?? '' : '';
        if (!vn) causes.push(required(`spec.versions[${i}].name`));
        else if (seen.has(vn)) causes.push({ field: `spec.versions[${i}].name`, reason: 'FieldValueDuplicate', message: `Duplicate value: ${q(vn)}` });
        seen.add(vn);
        const schema = isObj(v) ? objAt(objAt(v, 'schema'), 'openAPIV3Schema') : undefined;
        if (!schema) causes.push(required(`spec.versions[${i}].schema.openAPIV3Schema`, 'schemas are required'));
        else if (strAt(schema, 'type') !== 'object') causes.push(required(`spec.versions[${i}].schema.openAPIV3Schema.type`, 'must not be empty at the root'));
      });
    }
    if (old) {
      const oldSpec = objAt(old, 'spec');
      if (strAt(oldSpec, 'group') !== group) causes.push(invalidValue('spec.group', group, 'field is immutable'));
      if (strAt(oldSpec, 'scope') !== scope) causes.push(invalidValue('spec.scope', scope ?? '', 'field is immutable'));
    }
  }

  /** PUT and PATCH (a patch is an update of the patched current object), of an object or its status. */
  private update(t: Target, candidateOf: (current: JsonObject) => JsonObject, dry: boolean, patch = false): JsonObject {
    const rd = t.rd;
    const name = t.name ?? '';
    const ns = rd.namespaced ? t.ns ?? '' : '';
    const cur = this.bucket(rd).get(objectKey(ns, name));
    if (!cur) throw notFound(rd, name);
    const candidate = candidateOf(this.output(rd, cur));
    this.checkTypeMeta(rd, candidate);
    checkStringMaps(candidate);
    const next = without(structuredClone(candidate), ['kind', 'apiVersion']);
    const m = metaOf(next);
    const bodyName = strAt(m, 'name') ?? '';
    if (bodyName !== name) throw badRequest(`the name of the object (${bodyName}) does not match the name on the URL (${name})`);
    this.resolveNamespace(rd, t.ns, m);
    const curMeta = metaOf(cur);
    const rv = strAt(m, 'resourceVersion');
    if (rv !== undefined && rv !== '' && rv !== strAt(curMeta, 'resourceVersion')) throw conflict(rd, name, MODIFIED_MSG);
    const uid = strAt(m, 'uid');
    if (uid !== undefined && uid !== '' && uid !== strAt(curMeta, 'uid')) {
      // A PUT's uid is a precondition; a patch that changes it changes an immutable field.
      if (patch) throw invalid(rd, name, [invalidValue('metadata.uid', uid, 'field is immutable')]);
      throw conflict(rd, name, `Precondition failed: UID in precondition: ${uid}, UID in object meta: ${strAt(curMeta, 'uid') ?? ''}`);
    }
    let result: JsonObject;
    if (t.sub === 'status') {
      result = structuredClone(cur);
      if (next['status'] !== undefined) result['status'] = next['status'];
      else delete result['status'];
      // The pod, node and namespace status strategies restore the old spec but keep the
      // request's metadata — how kubelets, Flannel and Calico annotate Nodes and Pods with only
      // */status rights. Other kinds (custom resources among them) keep only .status here.
      if (!rd.crd && rd.group === '' && ['pods', 'nodes', 'namespaces'].includes(rd.plural)) {
        const rm = metaOf(result);
        const nm = metaOf(next);
        for (const k of ['labels', 'annotations']) {
          if (nm[k] !== undefined) rm[k] = structuredClone(nm[k] ?? null);
          else delete rm[k];
        }
      }
    } else {
      result = next;
      if (rd.status) {
        if (cur['status'] !== undefined) result['status'] = structuredClone(cur['status']);
        else delete result['status'];
      }
      const rm = metaOf(result);
      // Fields the server owns.
      for (const k of ['uid', 'creationTimestamp', 'deletionTimestamp', 'deletionGracePeriodSeconds', 'generation', 'resourceVersion']) {
        if (curMeta[k] !== undefined) rm[k] = structuredClone(curMeta[k] ?? null);
        else delete rm[k];
      }
      delete rm['managedFields'];
      delete rm['selfLink'];
      if (strAt(rm, 'generateName') === undefined && strAt(curMeta, 'generateName') !== undefined) rm['generateName'] = strAt(curMeta, 'generateName') ?? '';
      this.prepare(rd, result, cur);
    }
    this.validate(rd, result, cur);
    const ignored = rd.crd ? (rd.status ? ['metadata', 'status'] : ['metadata']) : undefined;
    const specChanged = ignored ? !deepEqual(without(result, ignored), without(cur, ignored)) : !deepEqual(result['spec'], cur['spec']);
    if (specChanged) metaOf(result)['generation'] = (typeof curMeta['generation'] === 'number' ? curMeta['generation'] : 0) + 1;
    // An update that changes nothing writes nothing (etcd3 storage compares the bytes).
    if (deepEqual(result, cur)) return this.output(rd, cur);
    if (dry) return this.output(rd, result);
    this.commit(rd, 'MODIFIED', ns, name, result, cur);
    const out = this.output(rd, result);
    if (rd.group === 'apiextensions.k8s.io' && rd.plural === 'customresourcedefinitions') this.syncCrd(name);
    return out;
  }

  private delete(t: Target, opts: JsonObject, dry: boolean): JsonObject {
    const rd = t.rd;
    const name = t.name ?? '';
    const ns = rd.namespaced ? t.ns ?? '' : '';
    const cur = this.bucket(rd).get(objectKey(ns, name));
    if (!cur) throw notFound(rd, name);
    const pre = objAt(opts, 'preconditions');
    const curMeta = metaOf(cur);
    const uid = strAt(pre, 'uid');
    if (uid !== undefined && uid !== strAt(curMeta, 'uid')) {
      throw conflict(rd, name, `Precondition failed: UID in precondition: ${uid}, UID in object meta: ${strAt(curMeta, 'uid') ?? ''}`);
    }
    const rv = strAt(pre, 'resourceVersion');
    if (rv !== undefined && rv !== strAt(curMeta, 'resourceVersion')) {
      throw conflict(rd, name, `Precondition failed: ResourceVersion in precondition: ${rv}, ResourceVersion in object meta: ${strAt(curMeta, 'resourceVersion') ?? ''}`);
    }
    if (dry) return this.output(rd, cur);
    if (rd.group === '' && !rd.crd && rd.plural === 'namespaces') {
      // No Terminating phase: the namespace's objects go at once, each with its DELETED event.
      for (const gvMap of this.resources.values()) {
        for (const r of gvMap.values()) {
          if (!r.namespaced) continue;
          const b = this.bucket(r);
          for (const [key, o] of [...b.entries()].sort(([a], [b2]) => a.localeCompare(b2))) {
            if (key.startsWith(`${name}/`)) this.removeObject(r, o);
          }
        }
      }
    }
    if (rd.group === 'apiextensions.k8s.io' && rd.plural === 'customresourcedefinitions') this.dropCrd(name);
    return this.output(rd, this.removeObject(rd, cur));
  }

  private removeObject(rd: ResourceDef, cur: JsonObject): JsonObject {
    const m = metaOf(cur);
    const last = structuredClone(cur);
    this.commit(rd, 'DELETED', strAt(m, 'namespace') ?? '', strAt(m, 'name') ?? '', last, cur);
    return last;
  }

  /** The one place a write happens: a new revision, the store, the history, the watches. */
  private commit(rd: ResourceDef, type: EventType, ns: string, name: string, obj: JsonObject, prev: JsonObject | undefined): void {
    const rev = ++this.rev;
    metaOf(obj)['resourceVersion'] = String(rev);
    const bucket = this.bucket(rd);
    if (type === 'DELETED') bucket.delete(objectKey(ns, name));
    else bucket.set(objectKey(ns, name), obj);
    const ev: StoredEvent = { rev, type, store: storeKeyOf(rd), ns, obj, prev };
    this.history.push(ev);
    if (this.history.length > HISTORY_LIMIT) {
      const dropped = this.history.splice(0, this.history.length - HISTORY_LIMIT);
      this.compactedRev = Math.max(this.compactedRev, dropped[dropped.length - 1]?.rev ?? 0);
    }
    for (const w of this.watchers) if (w.store === ev.store) this.deliver(w, ev);
  }

  // -------------------------------------------------------------------------------------------
  // CRDs

  private crdRd(): ResourceDef | undefined {
    return this.lookup('apiextensions.k8s.io/v1', 'customresourcedefinitions');
  }

  /** What the apiextensions controllers do after a CRD write: accept names, establish, serve. */
  private syncCrd(name: string): void {
    const crdRd = this.crdRd();
    if (!crdRd) return;
    const crd = this.bucket(crdRd).get(objectKey('', name));
    if (!crd) return;
    const spec = objAt(crd, 'spec') ?? {};
    const names = objAt(spec, 'names') ?? {};
    const versions = (Array.isArray(spec['versions']) ? spec['versions'] : []).filter(isObj);
    const storage = versions.find((v) => v['storage'] === true);
    const oldStatus = objAt(crd, 'status') ?? {};
    const stored = Array.isArray(oldStatus['storedVersions']) ? oldStatus['storedVersions'].filter((v): v is string => typeof v === 'string') : [];
    const storageName = strAt(storage, 'name');
    if (storageName && !stored.includes(storageName)) stored.push(storageName);
    const oldConditions = Array.isArray(oldStatus['conditions']) ? oldStatus['conditions'].filter(isObj) : [];
    const since = (type: string): string => strAt(oldConditions.find((c) => c['type'] === type && c['status'] === 'True'), 'lastTransitionTime') ?? now();
    const status: JsonObject = {
      acceptedNames: structuredClone(names),
      conditions: [
        { type: 'NamesAccepted', status: 'True', lastTransitionTime: since('NamesAccepted'), reason: 'NoConflicts', message: 'no conflicts found' },
        { type: 'Established', status: 'True', lastTransitionTime: since('Established'), reason: 'InitialNamesAccepted', message: 'the initial names have been accepted' },
      ],
      storedVersions: stored,
    };
    if (!deepEqual(status, oldStatus)) {
      const next = structuredClone(crd);
      next['status'] = status;
      this.commit(crdRd, 'MODIFIED', '', name, next, crd);
    }
    // Serve exactly the served versions now in the spec.
    const group = strAt(spec, 'group') ?? '';
    const plural = strAt(names, 'plural') ?? '';
    for (const [gv, m] of this.resources) {
      for (const rd of [...m.values()]) if (rd.crd === name) m.delete(rd.plural);
      if (m.size === 0) this.resources.delete(gv);
    }
    for (const v of versions) {
      const version = strAt(v, 'name');
      if (!version || v['served'] !== true) continue;
      const kind = strAt(names, 'kind') ?? '';
      this.register({
        group,
        version,
        plural,
        singular: strAt(names, 'singular') ?? kind.toLowerCase(),
        kind,
        listKind: strAt(names, 'listKind') ?? `${kind}List`,
        namespaced: strAt(spec, 'scope') === 'Namespaced',
        shortNames: Array.isArray(names['shortNames']) ? names['shortNames'].filter((s): s is string => typeof s === 'string') : [],
        categories: Array.isArray(names['categories']) ? names['categories'].filter((s): s is string => typeof s === 'string') : [],
        status: isObj(objAt(objAt(v, 'subresources'), 'status')),
        crd: name,
        schema: objAt(objAt(v, 'schema'), 'openAPIV3Schema'),
        fieldLabels: [],
        nameRule: 'subdomain',
      });
    }
  }

  /** Deleting a CRD: its objects go (DELETED events), then its paths and the watches on them. */
  private dropCrd(name: string): void {
    const defs = [...this.resources.values()].flatMap((m) => [...m.values()]).filter((rd) => rd.crd === name);
    const first = defs[0];
    if (!first) return;
    const bucket = this.bucket(first);
    for (const [, o] of [...bucket.entries()].sort(([a], [b]) => a.localeCompare(b))) this.removeObject(first, o);
    for (const w of [...this.watchers]) if (w.store === storeKeyOf(first)) this.closeWatch(w);
    for (const [gv, m] of this.resources) {
      for (const rd of defs) if (m.get(rd.plural) === rd) m.delete(rd.plural);
      if (m.size === 0) this.resources.delete(gv);
    }
    this.store.delete(storeKeyOf(first));
  }

  // -------------------------------------------------------------------------------------------
  // Lists

  private parseRv(s: string, what: string): number {
    if (!/^\d+$/.test(s)) throw badRequest(`invalid ${what}: ${q(s)}`);
    return Number(s);
  }

  /** The objects of one resource as they were at `rev`, rebuilt from the history. */
  private snapshot(rd: ResourceDef, rev: number): Map<string, JsonObject> {
    if (rev < this.compactedRev) throw expired(`too old resource version: ${rev} (${this.compactedRev})`);
    const out = new Map(this.bucket(rd));
    const store = storeKeyOf(rd);
    for (let i = this.history.length - 1; i >= 0; i--) {
      const ev = this.history[i];
      if (!ev || ev.rev <= rev) break;
      if (ev.store !== store) continue;
      const key = objectKey(ev.ns, strAt(metaOf(ev.obj), 'name') ?? '');
      if (ev.type === 'ADDED') out.delete(key);
      else if (ev.prev) out.set(key, ev.prev);
    }
    return out;
  }

  private tooLarge(rev: number): ApiError {
    return new ApiError(504, 'Timeout', `Timeout: Too large resource version: ${rev}, current: ${this.rev}`, { causes: [{ reason: 'ResourceVersionTooLarge', message: 'Too large resource version' }], retryAfterSeconds: 1 });
  }

  private list(t: Target, query: URLSearchParams): JsonObject {
    const rd = t.rd;
    const labels = parseLabelSelector(query.get('labelSelector') ?? '');
    const fields = parseFieldSelector(query.get('fieldSelector') ?? '', rd);
    const limitParam = query.get('limit');
    const limit = limitParam && /^\d+$/.test(limitParam) ? Number(limitParam) : 0;
    const cont = query.get('continue');
    const rvParam = query.get('resourceVersion') ?? '';
    const match = query.get('resourceVersionMatch') ?? '';
    let atRev = this.rev;
    let after = '';
    if (cont) {
      if (rvParam !== '') throw badRequest('specifying resource version is not allowed when using continue');
      let token: unknown;
      try {
        token = JSON.parse(Buffer.from(cont, 'base64url').toString('utf8'));
      } catch {
        token = undefined;
      }
      if (!isObj(token) || typeof token['rv'] !== 'number' || typeof token['start'] !== 'string') throw badRequest('continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)');
      atRev = token['rv'];
      after = token['start'];
      if (atRev < this.compactedRev) {
        throw expired('The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.');
      }
    } else if (rvParam !== '' && rvParam !== '0') {
      const n = this.parseRv(rvParam, 'resource version');
      if (n > this.rev) throw this.tooLarge(n);
      if (match === 'Exact') atRev = n;
    }
    if (match && !['Exact', 'NotOlderThan'].includes(match)) throw badRequest(`resourceVersionMatch: Unsupported value: ${q(match)}`);
    const source = atRev === this.rev ? this.bucket(rd) : this.snapshot(rd, atRev);
    const matching = [...source.entries()]
      .filter(([key]) => t.ns === undefined || key.startsWith(`${t.ns}/`))
      .filter(([key]) => key > after)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .filter(([, o]) => matchLabels(labels, objAt(metaOf(o), 'labels')) && matchFields(fields, o));
    const page = limit > 0 ? matching.slice(0, limit) : matching;
    const metadata: JsonObject = { resourceVersion: String(atRev) };
    if (limit > 0 && matching.length > limit) {
      const lastKey = page[page.length - 1]?.[0] ?? '';
      metadata['continue'] = Buffer.from(JSON.stringify({ rv: atRev, start: lastKey })).toString('base64url');
      if (labels.length === 0 && fields.length === 0) metadata['remainingItemCount'] = matching.length - limit;
    }
    // As the real server serialises lists in JSON: items without kind and apiVersion.
    return { kind: rd.listKind, apiVersion: apiVersionOf(rd), metadata, items: page.map(([, o]) => structuredClone(o)) };
  }

  // -------------------------------------------------------------------------------------------
  // Watches

  private watch(res: ServerResponse, rec: StandinRequest, t: Target, query: URLSearchParams): void {
    const rd = t.rd;
    const labels = parseLabelSelector(query.get('labelSelector') ?? '');
    const fields = parseFieldSelector(query.get('fieldSelector') ?? '', rd);
    if (query.has('sendInitialEvents')) {
      throw new ApiError(422, 'Invalid', `ListOptions.meta.k8s.io "" is invalid: sendInitialEvents: Forbidden: sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled`, {
        kind: 'ListOptions',
        group: 'meta.k8s.io',
        causes: [{ reason: 'FieldValueForbidden', message: 'Forbidden: sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled', field: 'sendInitialEvents' }],
      });
    }
    const rvParam = query.get('resourceVersion') ?? '';
    const from = rvParam === '' ? 0 : this.parseRv(rvParam, 'resource version');
    const timeoutParam = query.get('timeoutSeconds');
    const timeout = timeoutParam && /^\d+$/.test(timeoutParam) ? Number(timeoutParam) : 0;
    const bookmarks = query.get('allowWatchBookmarks') === 'true';

    rec.status = 200;
    this.requests.push(rec);
    // No Content-Length: Node sends it chunked, as the real server streams a watch.
    res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private', 'Audit-Id': randomUUID() });
    res.flushHeaders();
    // A client that went away while the request waited (pause) has nothing to watch with.
    if (res.destroyed || res.socket?.destroyed) return;
    const w: Watcher = { rd, store: storeKeyOf(rd), ns: t.ns, labels, fields, res, pending: [], timers: [], closed: false };
    if (from > 0 && from < this.compactedRev) {
      // As the watch cache does: 200, then one ERROR event, then the end.
      const status = expired(`too old resource version: ${from} (${this.compactedRev})`).status();
      res.end(`${JSON.stringify({ type: 'ERROR', object: status })}\n`);
      return;
    }
    this.watchers.add(w);
    res.on('close', () => this.closeWatch(w));
    if (from === 0) {
      const current = [...this.bucket(rd).entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      for (const [key, o] of current) {
        if (t.ns !== undefined && !key.startsWith(`${t.ns}/`)) continue;
        if (this.matches(w, o)) this.send(w, { type: 'ADDED', object: this.output(rd, o) });
      }
    } else {
      for (const ev of this.history) if (ev.rev > from && ev.store === w.store) this.deliver(w, ev);
    }
    if (bookmarks) {
      const tick = (): void => {
        const timer = setTimeout(() => {
          w.timers = w.timers.filter((x) => x !== timer);
          if (w.closed) return;
          if (!this.paused && !this.bookmarksHeld) this.send(w, { type: 'BOOKMARK', object: { kind: rd.kind, apiVersion: apiVersionOf(rd), metadata: { resourceVersion: String(this.rev) } } });
          tick();
        }, this.bookmarkIntervalMs);
        w.timers.push(timer);
      };
      tick();
    }
    if (timeout > 0) {
      w.timers.push(
        setTimeout(() => this.closeWatch(w), timeout * 1000),
      );
    }
  }

  private matches(w: Watcher, o: JsonObject): boolean {
    return matchLabels(w.labels, objAt(metaOf(o), 'labels')) && matchFields(w.fields, o);
  }

  /** One stored event as this watcher sees it (cacheWatcher.convertToWatchEvent). */
  private deliver(w: Watcher, ev: StoredEvent): void {
    if (w.closed || (w.ns !== undefined && ev.ns !== w.ns)) return;
    const cur = ev.type !== 'DELETED' && this.matches(w, ev.obj);
    const old = ev.prev !== undefined && this.matches(w, ev.prev);
    if (!cur && !old) return;
    if (cur && !old) this.send(w, { type: 'ADDED', object: this.output(w.rd, ev.obj) });
    else if (cur && old) this.send(w, { type: 'MODIFIED', object: this.output(w.rd, ev.obj) });
    else if (ev.prev) {
      // The previous content at the event's revision.
      const last = this.output(w.rd, ev.prev);
      metaOf(last)['resourceVersion'] = String(ev.rev);
      this.send(w, { type: 'DELETED', object: last });
    }
  }

  private send(w: Watcher, event: JsonObject): void {
    if (w.closed) return;
    const line = `${JSON.stringify(event)}\n`;
    if (this.paused) w.pending.push(line);
    else w.res.write(line);
  }

  /** Ends a watch: cleanly (the last chunk), or abruptly (the socket destroyed mid-stream). */
  private closeWatch(w: Watcher, abrupt = false): void {
    if (w.closed) return;
    w.closed = true;
    for (const t of w.timers) clearTimeout(t);
    w.timers = [];
    this.watchers.delete(w);
    if (abrupt) w.res.socket?.destroy();
    else if (!w.res.writableEnded && !w.res.destroyed) w.res.end();
  }
}
