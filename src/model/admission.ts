import { isIP } from 'node:net';
import * as z from 'zod/mini';
import { isValidAddress, parseCidr, type AddressError, type Cidr } from '../ipam/cidr.js';
import { dnsLabelProblem, dnsSubdomainProblem } from '../util/dns-names.js';
import { printable } from '../util/printable.js';
import { UserError } from '../util/user-error.js';
import { admitClusterPolicy } from './cluster-policy.js';
import { FieldErrors, labelKeyProblem, labelValueProblem, PORT_RANGE_PROBLEM, portNameProblem, validPortNumber, type FieldPath } from './field-errors.js';
import { admitNetworkPolicy, PORT_PROTOCOLS } from './network-policy.js';
import { WIREGUARD_KEY } from '../datapath/wireguard-key.js';
import { BACKENDS, blockName, IPAM_MODES, NODE_ANNOTATIONS, parseEndpoint, WEFT_API, type KObject, type NetworkPolicyObject, type WeftClusterPolicyObject } from './objects.js';

/**
 * Admission of every object Weft reads (pure): what the API server checks on create, for each
 * kind an agent, the CLI or the lab uses — shape and values, with the API server's own rules
 * where Kubernetes has them (names, label syntax, ports 1-65535, addresses) and Weft's where the
 * kind is Weft's. Applied by `weft apply` before writing and, through the admitting store
 * (datastore/admitted-store.ts), to every object read from any datastore before any of its
 * values is used: an object written past `weft apply` (straight into etcd, a file datastore
 * edited by hand) that fails is left out whole and reported, never half-used.
 *
 * Kubernetes kinds are checked in the fields Weft reads and otherwise taken as they are (the API
 * server owns the rest); Weft's own kinds are strict: an unknown field is an error.
 */
export class AdmissionError extends UserError {}

interface KindRule {
  apiVersion: string;
  namespaced: boolean;
  /** Kind-specific checks and defaulting of an object whose metadata is already valid. */
  admit?: (obj: KObject, errs: FieldErrors) => KObject;
  name?: (name: string) => string | undefined;
}

const TOTAL_ANNOTATION_BYTES = 256 * 1024;
/** etcd's default request limit is 1.5 MiB; no object Weft reads comes near 1 MiB. */
const MAX_OBJECT_BYTES = 1 << 20;

const mac = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
const CONTAINER_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$/;

/** libcni's interface name rule. */
function ifNameProblem(s: string): string | undefined {
  if (s === '' || Buffer.byteLength(s) > 15) return 'must be 1-15 bytes';
  if (s === '.' || s === '..' || /[/:\s]/.test(s) || /[\x00-\x1f\x7f]/.test(s)) return 'must not be "." or "..", nor contain "/", ":", whitespace or control characters';
  return undefined;
}

/** The address parser the rest of Weft uses (no IPv6 zone ids, unlike node:net's isIP). */
function addressProblem(s: unknown): string | undefined {
  return typeof s === 'string' && isValidAddress(s) ? undefined : 'must be a valid IP address (e.g. 10.244.1.5 or fd00::5)';
}

function cidr(s: unknown, path: FieldPath, errs: FieldErrors): Cidr | undefined {
  if (typeof s !== 'string') {
    errs.invalid(path, s, 'must be a CIDR');
    return undefined;
  }
  try {
    return parseCidr(s);
  } catch (err) {
    errs.invalid(path, s, (err as AddressError).message);
    return undefined;
  }
}

function timestamp(s: unknown, path: FieldPath, errs: FieldErrors): void {
  if (s === undefined || s === null) return;
  if (typeof s !== 'string' || !/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$/.test(s) || Number.isNaN(Date.parse(s))) {
    errs.invalid(path, s, 'must be an RFC 3339 time (e.g. 2026-11-29T12:00:00.000000Z)');
  }
}

/** zod issues, then kind checks only if the shape is right (they read the fields it promises). */
function shaped<S extends z.ZodMiniType>(schema: S, value: unknown, root: FieldPath, errs: FieldErrors): z.infer<S> | undefined {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  errs.addZodIssues(r.error.issues, root, value);
  return undefined;
}

// --- metadata, every kind ---

const stringMap = z.record(z.string(), z.string(), { error: 'must map strings to strings' });
const metadataSchema = z.looseObject({
  name: z.string(),
  namespace: z.optional(z.string()),
  labels: z.nullish(stringMap),
  annotations: z.nullish(stringMap),
  resourceVersion: z.optional(z.string()),
  creationTimestamp: z.nullish(z.string()),
});
const objectSchema = z.looseObject({ apiVersion: z.string(), kind: z.string(), metadata: metadataSchema });

function validateMetadata(obj: KObject, rule: KindRule, errs: FieldErrors): void {
  const m = obj.metadata;
  const why = (rule.name ?? dnsSubdomainProblem)(m.name);
  if (why) errs.invalid(['metadata', 'name'], m.name, why);
  if (rule.namespaced) {
    if (m.namespace === undefined) errs.required(['metadata', 'namespace']);
    else {
      const nsWhy = dnsLabelProblem(m.namespace);
      if (nsWhy) errs.invalid(['metadata', 'namespace'], m.namespace, nsWhy);
    }
  } else if (m.namespace !== undefined && m.namespace !== '') {
    errs.forbidden(['metadata', 'namespace'], `not allowed on this type: a ${obj.kind} is cluster-scoped`);
  }
  for (const [k, v] of Object.entries(m.labels ?? {})) {
    const kw = labelKeyProblem(k);
    if (kw) errs.invalid(['metadata', 'labels'], k, kw);
    const vw = labelValueProblem(v);
    if (vw) errs.invalid(['metadata', 'labels'], v, vw);
  }
  let size = 0;
  for (const [k, v] of Object.entries(m.annotations ?? {})) {
    const kw = labelKeyProblem(k);
    if (kw) errs.invalid(['metadata', 'annotations'], k, kw);
    size += k.length + v.length;
  }
  if (size > TOTAL_ANNOTATION_BYTES) errs.tooLong(['metadata', 'annotations'], TOTAL_ANNOTATION_BYTES);
  timestamp(m.creationTimestamp, ['metadata', 'creationTimestamp'], errs);
  if (m.resourceVersion !== undefined && !/^\d{1,20}$/.test(m.resourceVersion)) errs.invalid(['metadata', 'resourceVersion'], m.resourceVersion, 'must be a revision number');
}

// --- Kubernetes kinds: the fields Weft reads ---

const podSchema = z.looseObject({
  spec: z.nullish(
    z.looseObject({
      nodeName: z.nullish(z.string()),
      hostNetwork: z.nullish(z.boolean()),
      containers: z.nullish(
        z.array(
          z.looseObject({
            name: z.string(),
            ports: z.nullish(z.array(z.looseObject({ name: z.nullish(z.string()), containerPort: z.int(), protocol: z.nullish(z.string()), hostPort: z.nullish(z.int()), hostIP: z.nullish(z.string()) }))),
          }),
        ),
      ),
    }),
  ),
  status: z.nullish(z.looseObject({ phase: z.nullish(z.string()), podIP: z.nullish(z.string()), podIPs: z.nullish(z.array(z.looseObject({ ip: z.string() }))) })),
});
const POD_PHASES = ['Pending', 'Running', 'Succeeded', 'Failed', 'Unknown'] as const;

function admitPod(obj: KObject, errs: FieldErrors): KObject {
  const p = shaped(podSchema, obj, [], errs);
  if (!p) return obj;
  const spec = p.spec ?? {};
  if (spec.nodeName) {
    const why = dnsSubdomainProblem(spec.nodeName);
    if (why) errs.invalid(['spec', 'nodeName'], spec.nodeName, why);
  }
  const names = new Set<string>();
  (spec.containers ?? []).forEach((c, i) => {
    const cp: FieldPath = ['spec', 'containers', i];
    const why = dnsLabelProblem(c.name);
    if (why) errs.invalid([...cp, 'name'], c.name, why);
    (c.ports ?? []).forEach((port, j) => {
      const pp: FieldPath = [...cp, 'ports', j];
      if (!validPortNumber(port.containerPort)) errs.invalid([...pp, 'containerPort'], port.containerPort, PORT_RANGE_PROBLEM);
      if (port.hostPort != null && !validPortNumber(port.hostPort)) errs.invalid([...pp, 'hostPort'], port.hostPort, PORT_RANGE_PROBLEM);
      if (port.protocol != null && !(PORT_PROTOCOLS as readonly string[]).includes(port.protocol)) errs.unsupported([...pp, 'protocol'], port.protocol, PORT_PROTOCOLS);
      if (port.hostIP != null && addressProblem(port.hostIP)) errs.invalid([...pp, 'hostIP'], port.hostIP, addressProblem(port.hostIP) as string);
      if (port.name != null) {
        const nw = portNameProblem(port.name);
        if (nw) errs.invalid([...pp, 'name'], port.name, nw);
        else if (names.has(port.name)) errs.duplicate([...pp, 'name'], port.name);
        names.add(port.name);
      }
    });
  });
  const st = p.status ?? {};
  if (st.phase != null && !(POD_PHASES as readonly string[]).includes(st.phase)) errs.unsupported(['status', 'phase'], st.phase, POD_PHASES);
  if (st.podIP != null && addressProblem(st.podIP)) errs.invalid(['status', 'podIP'], st.podIP, addressProblem(st.podIP) as string);
  const ips = st.podIPs ?? [];
  ips.forEach((x, i) => {
    if (addressProblem(x.ip)) errs.invalid(['status', 'podIPs', i, 'ip'], x.ip, addressProblem(x.ip) as string);
  });
  if (ips.length > 2 || (ips.length === 2 && isIP(ips[0]?.ip ?? '') === isIP(ips[1]?.ip ?? ''))) errs.invalid(['status', 'podIPs'], ips, 'may hold at most one address per family');
  // weft.io/pod-ips is not checked here: whoever may edit a Pod may write it, and a bad value
  // must not hide the whole Pod (its labels) from policy. Its reader drops what is not an address.
  return obj;
}

function oneAddressPerFamily(text: string): boolean {
  const list = text.split(',');
  return list.length <= 2 && !list.some((a) => addressProblem(a)) && !(list.length === 2 && isIP(list[0] as string) === isIP(list[1] as string));
}

const nodeSchema = z.looseObject({
  spec: z.nullish(z.looseObject({ podCIDR: z.nullish(z.string()), podCIDRs: z.nullish(z.array(z.string())) })),
  status: z.nullish(z.looseObject({ addresses: z.nullish(z.array(z.looseObject({ type: z.string(), address: z.string() }))) })),
});
const NODE_ADDRESS_TYPES = ['Hostname', 'InternalIP', 'ExternalIP', 'InternalDNS', 'ExternalDNS'] as const;

function admitNode(obj: KObject, errs: FieldErrors): KObject {
  const n = shaped(nodeSchema, obj, [], errs);
  if (!n) return obj;
  const cidrs = (n.spec?.podCIDRs ?? []).map((c, i) => cidr(c, ['spec', 'podCIDRs', i], errs));
  if (cidrs.length > 2 || (cidrs.length === 2 && cidrs[0] && cidrs[0].family === cidrs[1]?.family)) errs.invalid(['spec', 'podCIDRs'], n.spec?.podCIDRs, 'may hold at most one CIDR per family');
  if (n.spec?.podCIDR != null && cidr(n.spec.podCIDR, ['spec', 'podCIDR'], errs) && cidrs.length > 0 && n.spec.podCIDR !== n.spec.podCIDRs?.[0]) {
    errs.invalid(['spec', 'podCIDR'], n.spec.podCIDR, 'must equal the first entry of podCIDRs');
  }
  (n.status?.addresses ?? []).forEach((a, i) => {
    const ap: FieldPath = ['status', 'addresses', i];
    if (!(NODE_ADDRESS_TYPES as readonly string[]).includes(a.type)) errs.unsupported([...ap, 'type'], a.type, NODE_ADDRESS_TYPES);
    const why = a.type.endsWith('IP') ? addressProblem(a.address) : dnsSubdomainProblem(a.address);
    if (why) errs.invalid([...ap, 'address'], a.address, why);
  });
  const ann = obj.metadata.annotations ?? {};
  const at = (k: string): FieldPath => ['metadata', 'annotations', k];
  const backend = ann[NODE_ANNOTATIONS.backend];
  if (backend !== undefined && !(BACKENDS as readonly string[]).includes(backend)) errs.unsupported(at(NODE_ANNOTATIONS.backend), backend, BACKENDS);
  const vmac = ann[NODE_ANNOTATIONS.vxlanMac];
  if (vmac !== undefined && (!mac.test(vmac) || parseInt(vmac.slice(0, 2), 16) & 1)) errs.invalid(at(NODE_ANNOTATIONS.vxlanMac), vmac, 'must be a unicast MAC address in lower case (e.g. 02:42:ac:11:00:02)');
  const wgKey = ann[NODE_ANNOTATIONS.wireguardPublicKey];
  if (wgKey !== undefined && !WIREGUARD_KEY.test(wgKey)) errs.invalid(at(NODE_ANNOTATIONS.wireguardPublicKey), wgKey, 'must be a WireGuard public key: base64 of 32 bytes, 44 characters');
  const wgEndpoint = ann[NODE_ANNOTATIONS.wireguardEndpoint];
  if (wgEndpoint !== undefined && parseEndpoint(wgEndpoint) === undefined) errs.invalid(at(NODE_ANNOTATIONS.wireguardEndpoint), wgEndpoint, 'must be an address and a UDP port: 192.0.2.1:51820 or [2001:db8::1]:51820');
  const blocks = ann[NODE_ANNOTATIONS.podCIDRs];
  if (blocks !== undefined && blocks !== '') {
    const list = blocks.split(',').map((c) => cidr(c, at(NODE_ANNOTATIONS.podCIDRs), errs));
    if (list.length > 2 || (list.length === 2 && list[0] && list[0].family === list[1]?.family)) errs.invalid(at(NODE_ANNOTATIONS.podCIDRs), blocks, 'must be one or two CIDRs, one per family, separated by ","');
  }
  const ips = ann[NODE_ANNOTATIONS.nodeIPs];
  if (ips !== undefined && !oneAddressPerFamily(ips)) errs.invalid(at(NODE_ANNOTATIONS.nodeIPs), ips, 'must be one or two addresses, one per family, separated by ","');
  return obj;
}

const leaseSchema = z.looseObject({
  spec: z.nullish(
    z.looseObject({
      holderIdentity: z.nullish(z.string()),
      leaseDurationSeconds: z.nullish(z.int()),
      acquireTime: z.nullish(z.string()),
      renewTime: z.nullish(z.string()),
      leaseTransitions: z.nullish(z.int()),
    }),
  ),
});

function admitLease(obj: KObject, errs: FieldErrors): KObject {
  const l = shaped(leaseSchema, obj, [], errs);
  if (!l) return obj;
  const s = l.spec ?? {};
  if (s.holderIdentity != null && (s.holderIdentity.length > 253 || /[\x00-\x1f\x7f]/.test(s.holderIdentity))) errs.invalid(['spec', 'holderIdentity'], s.holderIdentity, 'must be at most 253 printable characters');
  if (s.leaseDurationSeconds != null && s.leaseDurationSeconds <= 0) errs.invalid(['spec', 'leaseDurationSeconds'], s.leaseDurationSeconds, 'must be greater than 0');
  if (s.leaseTransitions != null && s.leaseTransitions < 0) errs.invalid(['spec', 'leaseTransitions'], s.leaseTransitions, 'must be greater than or equal to 0');
  timestamp(s.acquireTime, ['spec', 'acquireTime'], errs);
  timestamp(s.renewTime, ['spec', 'renewTime'], errs);
  return obj;
}

function admitNamespace(obj: KObject): KObject {
  // The API server labels every namespace with its name.
  return { ...obj, metadata: { ...obj.metadata, labels: { ...(obj.metadata.labels ?? {}), 'kubernetes.io/metadata.name': obj.metadata.name } } };
}

// --- Weft's kinds: strict ---

const weft = <T extends z.core.$ZodLooseShape>(spec: T) => z.strictObject({ apiVersion: z.string(), kind: z.string(), metadata: metadataSchema, spec: z.strictObject(spec) });

const ipBlockSchema = weft({ cidr: z.string(), family: z.union([z.literal(4), z.literal(6)]), node: z.string() });

function admitIPBlock(obj: KObject, errs: FieldErrors): KObject {
  const b = shaped(ipBlockSchema, obj, [], errs);
  if (!b) return obj;
  const c = cidr(b.spec.cidr, ['spec', 'cidr'], errs);
  if (c && c.text !== b.spec.cidr) errs.invalid(['spec', 'cidr'], b.spec.cidr, `must be written canonically (${c.text})`);
  if (c && c.family !== b.spec.family) errs.invalid(['spec', 'family'], b.spec.family, `must be the family of spec.cidr (${c.family})`);
  if (c && obj.metadata.name !== blockName(c.text)) errs.invalid(['metadata', 'name'], obj.metadata.name, `must be ${blockName(c.text)}, the name of its CIDR`);
  const why = dnsSubdomainProblem(b.spec.node);
  if (why) errs.invalid(['spec', 'node'], b.spec.node, why);
  return obj;
}

const endpointSchema = weft({
  node: z.string(),
  containerId: z.string(),
  ifName: z.string(),
  addresses: z.array(z.string()),
  podName: z.optional(z.string()),
  labels: z.optional(stringMap),
});

function admitWeftEndpoint(obj: KObject, errs: FieldErrors): KObject {
  const e = shaped(endpointSchema, obj, [], errs);
  if (!e) return obj;
  const s = e.spec;
  const nw = dnsSubdomainProblem(s.node);
  if (nw) errs.invalid(['spec', 'node'], s.node, nw);
  if (!CONTAINER_ID.test(s.containerId)) errs.invalid(['spec', 'containerId'], s.containerId, 'must be a CNI container id (letters, digits, "_", "." and "-", starting with a letter or digit)');
  const iw = ifNameProblem(s.ifName);
  if (iw) errs.invalid(['spec', 'ifName'], s.ifName, iw);
  s.addresses.forEach((a, i) => {
    const aw = addressProblem(a);
    if (aw) errs.invalid(['spec', 'addresses', i], a, aw);
  });
  if (s.addresses.length === 0 || s.addresses.length > 2 || (s.addresses.length === 2 && isIP(s.addresses[0] as string) === isIP(s.addresses[1] as string))) {
    errs.invalid(['spec', 'addresses'], s.addresses, 'must hold one or two addresses, one per family');
  }
  if (s.podName !== undefined) {
    const pw = dnsSubdomainProblem(s.podName);
    if (pw) errs.invalid(['spec', 'podName'], s.podName, pw);
  }
  for (const [k, v] of Object.entries(s.labels ?? {})) {
    const why = labelKeyProblem(k) ?? labelValueProblem(v);
    if (why) errs.invalid(['spec', 'labels'], `${k}=${v}`, why);
  }
  return obj;
}

const clusterNetworkSchema = weft({
  podCIDRs: z.array(z.string()),
  blockSize: z.strictObject({ ipv4: z.int(), ipv6: z.int() }),
  backend: z.strictObject({ type: z.string(), vni: z.optional(z.int()), port: z.optional(z.int()) }),
  encryption: z.optional(z.strictObject({ type: z.string(), port: z.int() })),
  leaseDurationSeconds: z.int(),
  nodeGraceSeconds: z.optional(z.int()),
  ipam: z.optional(z.string()),
});

function admitClusterNetwork(obj: KObject, errs: FieldErrors): KObject {
  const n = shaped(clusterNetworkSchema, obj, [], errs);
  if (!n) return obj;
  const s = n.spec;
  const cidrs = s.podCIDRs.map((c, i) => cidr(c, ['spec', 'podCIDRs', i], errs));
  if (cidrs.length === 0 || cidrs.length > 2 || (cidrs.length === 2 && cidrs[0] && cidrs[0].family === cidrs[1]?.family)) {
    errs.invalid(['spec', 'podCIDRs'], s.podCIDRs, 'must hold one or two CIDRs, one per family');
  }
  for (const c of cidrs) {
    if (!c) continue;
    const size = c.family === 4 ? s.blockSize.ipv4 : s.blockSize.ipv6;
    const max = c.family === 4 ? 30 : 126;
    if (size < c.prefix || size > max) errs.invalid(['spec', 'blockSize', c.family === 4 ? 'ipv4' : 'ipv6'], size, `must be between ${c.prefix} and ${max} for the range ${c.text}`);
  }
  if (!(BACKENDS as readonly string[]).includes(s.backend.type)) errs.unsupported(['spec', 'backend', 'type'], s.backend.type, BACKENDS);
  if (s.ipam !== undefined && !(IPAM_MODES as readonly string[]).includes(s.ipam)) errs.unsupported(['spec', 'ipam'], s.ipam, IPAM_MODES);
  if (s.backend.vni !== undefined && (s.backend.vni < 1 || s.backend.vni > 16_777_215)) errs.invalid(['spec', 'backend', 'vni'], s.backend.vni, 'must be between 1 and 16777215, inclusive');
  if (s.backend.port !== undefined && !validPortNumber(s.backend.port)) errs.invalid(['spec', 'backend', 'port'], s.backend.port, PORT_RANGE_PROBLEM);
  if (s.encryption !== undefined && s.encryption.type !== 'wireguard') errs.unsupported(['spec', 'encryption', 'type'], s.encryption.type, ['wireguard']);
  if (s.encryption !== undefined && !validPortNumber(s.encryption.port)) errs.invalid(['spec', 'encryption', 'port'], s.encryption.port, PORT_RANGE_PROBLEM);
  if (s.leaseDurationSeconds < 3 || s.leaseDurationSeconds > 3600) errs.invalid(['spec', 'leaseDurationSeconds'], s.leaseDurationSeconds, 'must be between 3 and 3600, inclusive');
  if (s.nodeGraceSeconds !== undefined && (s.nodeGraceSeconds < 0 || s.nodeGraceSeconds > 366 * 86_400)) errs.invalid(['spec', 'nodeGraceSeconds'], s.nodeGraceSeconds, 'must be between 0 (never) and 31622400 (a year), inclusive');
  return obj;
}

const KINDS: Readonly<Record<string, KindRule>> = {
  Namespace: { apiVersion: 'v1', namespaced: false, name: dnsLabelProblem, admit: admitNamespace },
  Pod: { apiVersion: 'v1', namespaced: true, admit: admitPod },
  Node: { apiVersion: 'v1', namespaced: false, admit: admitNode },
  Lease: { apiVersion: 'coordination.k8s.io/v1', namespaced: true, admit: admitLease },
  // Policies have their own admission (validation and defaulting); it throws the API server's words.
  NetworkPolicy: { apiVersion: 'networking.k8s.io/v1', namespaced: true, admit: (o) => admitNetworkPolicy(o as NetworkPolicyObject) },
  WeftClusterPolicy: { apiVersion: WEFT_API, namespaced: false, admit: (o) => admitClusterPolicy(o as WeftClusterPolicyObject) },
  WeftEndpoint: { apiVersion: WEFT_API, namespaced: true, admit: admitWeftEndpoint },
  IPBlock: { apiVersion: WEFT_API, namespaced: false, admit: admitIPBlock },
  ClusterNetwork: { apiVersion: WEFT_API, namespaced: false, admit: admitClusterNetwork, name: (n) => (n === 'default' ? undefined : 'must be "default" (the cluster has one network)') },
};

/** The kinds Weft itself reads: anything else is stored as is, for tools, and never used. */
export const ADMITTED_KINDS: readonly string[] = Object.keys(KINDS);

/** Cluster-scoped kinds Weft does not read (others it does not know are taken as namespaced). */
const CLUSTER_SCOPED_OTHERS = new Set(['ClusterRole', 'ClusterRoleBinding', 'CustomResourceDefinition', 'PersistentVolume', 'StorageClass', 'PriorityClass']);

export function isNamespacedKind(kind: string): boolean {
  const rule = KINDS[kind];
  return rule ? rule.namespaced : !CLUSTER_SCOPED_OTHERS.has(kind);
}

/**
 * Validates (and defaults, as the API server does) one object; throws AdmissionError with every
 * problem, worded like the API server's (`The Pod "web" is invalid: * spec.containers[0]...`).
 * Unknown kinds get the checks every object needs.
 */
export function admitObject(value: unknown): KObject {
  const errs = new FieldErrors();
  const kindText = typeof value === 'object' && value !== null && typeof (value as { kind?: unknown }).kind === 'string' ? ((value as { kind: string }).kind as string) : 'object';
  const nameText = typeof value === 'object' && value !== null ? (value as { metadata?: { name?: unknown } }).metadata?.name : undefined;
  const label = (typeof nameText === 'string' ? nameText : '').slice(0, 253);
  const fail = (): never => errs.throwIfAny(printable(kindText, 63), label, (m) => new AdmissionError(m)) as never;
  const obj = shaped(objectSchema, value, [], errs) as KObject | undefined;
  if (!obj) return fail();
  if (!/^[A-Z][A-Za-z0-9]{0,62}$/.test(obj.kind)) {
    errs.invalid(['kind'], obj.kind, 'must be a kind such as Pod or NetworkPolicy');
    return fail();
  }
  if (JSON.stringify(value).length > MAX_OBJECT_BYTES) {
    errs.tooLong([], MAX_OBJECT_BYTES);
    return fail();
  }
  const rule = KINDS[obj.kind];
  if (rule && obj.apiVersion !== rule.apiVersion) {
    throw new AdmissionError(`no matches for kind "${obj.kind}" in version "${printable(obj.apiVersion, 100)}" (use apiVersion: ${rule.apiVersion})`);
  }
  if (!/^[a-z0-9.-]{0,253}\/?v[0-9a-z]{1,20}$/.test(obj.apiVersion)) errs.invalid(['apiVersion'], obj.apiVersion, 'must be GROUP/VERSION or VERSION (e.g. v1, networking.k8s.io/v1)');
  validateMetadata(obj, rule ?? { apiVersion: obj.apiVersion, namespaced: isNamespacedKind(obj.kind) }, errs);
  if (errs.list.length > 0) return fail();
  let out = obj;
  try {
    if (rule?.admit) out = rule.admit(obj, errs);
  } catch (err) {
    if (err instanceof UserError && !(err instanceof AdmissionError)) throw new AdmissionError(err.message);
    throw err;
  }
  if (errs.list.length > 0) return fail();
  return out;
}

/** For readers that must not throw: the admitted object, or why it is left out. */
export function tryAdmit(value: unknown): { ok: true; object: KObject } | { ok: false; reason: string } {
  try {
    return { ok: true, object: admitObject(value) };
  } catch (err) {
    if (err instanceof UserError) return { ok: false, reason: err.message };
    return { ok: false, reason: `cannot be read: ${(err as Error).message}` };
  }
}
