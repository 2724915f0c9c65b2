import * as z from 'zod/mini';
import { cidrContains, parseCidrMasked, type Cidr } from '../ipam/cidr.js';
import { UserError } from '../util/user-error.js';
import { FieldErrors, PORT_RANGE_PROBLEM, portNameProblem, validPortNumber, type FieldPath } from './field-errors.js';
import { labelSelectorSchema, validateLabelSelector } from './label-selector.js';
import type { NetworkPolicyObject } from './objects.js';

/**
 * NetworkPolicy admission without an API server (file and etcd datastores): the API server's
 * validation and defaulting for networking.k8s.io/v1, so what reaches the datastore is what a
 * Kubernetes cluster would have stored. Unknown fields are rejected, like kubectl's strict
 * field validation, because a misspelt `podSelector` silently selecting everything is the
 * worst kind of policy bug.
 */
export const NETWORK_POLICY_API = 'networking.k8s.io/v1';
export const PORT_PROTOCOLS = ['SCTP', 'TCP', 'UDP'] as const;
export const POLICY_TYPES = ['Egress', 'Ingress'] as const;

const intOrString = z.union([z.int(), z.string()], { error: 'must be a port number or name' });
const portSchema = z.strictObject({
  protocol: z.nullish(z.string()),
  port: z.nullish(intOrString),
  endPort: z.nullish(z.int()),
});
const peerSchema = z.strictObject({
  podSelector: z.nullish(labelSelectorSchema),
  namespaceSelector: z.nullish(labelSelectorSchema),
  ipBlock: z.nullish(z.strictObject({ cidr: z.string(), except: z.nullish(z.array(z.string())) })),
});
const specSchema = z.strictObject({
  podSelector: z.nullish(labelSelectorSchema),
  ingress: z.nullish(z.array(z.strictObject({ from: z.nullish(z.array(peerSchema)), ports: z.nullish(z.array(portSchema)) }))),
  egress: z.nullish(z.array(z.strictObject({ to: z.nullish(z.array(peerSchema)), ports: z.nullish(z.array(portSchema)) }))),
  policyTypes: z.nullish(z.array(z.string())),
});

type Spec = z.infer<typeof specSchema>;
type PortInput = z.infer<typeof portSchema>;
type PeerInput = z.infer<typeof peerSchema>;

function parseCidrOrUndefined(text: string): Cidr | undefined {
  try {
    return parseCidrMasked(text);
  } catch {
    return undefined;
  }
}

function validatePort(p: PortInput, path: FieldPath, errs: FieldErrors): void {
  if (p.protocol != null && !(PORT_PROTOCOLS as readonly string[]).includes(p.protocol)) errs.unsupported([...path, 'protocol'], p.protocol, PORT_PROTOCOLS);
  if (typeof p.port === 'number' && !validPortNumber(p.port)) errs.invalid([...path, 'port'], p.port, PORT_RANGE_PROBLEM);
  if (typeof p.port === 'string') {
    const why = portNameProblem(p.port);
    if (why) errs.invalid([...path, 'port'], p.port, why);
  }
  if (p.endPort != null) {
    if (p.port == null) errs.required([...path, 'port'], 'must be specified when endPort is specified');
    else if (typeof p.port === 'string') errs.forbidden([...path, 'endPort'], 'may not be specified when `port` is non-numeric');
    else if (p.endPort < p.port) errs.invalid([...path, 'endPort'], p.endPort, 'must be greater than or equal to `port`');
    if (!validPortNumber(p.endPort)) errs.invalid([...path, 'endPort'], p.endPort, PORT_RANGE_PROBLEM);
  }
}

function validatePeer(peer: PeerInput, path: FieldPath, errs: FieldErrors): void {
  let n = 0;
  if (peer.podSelector != null) {
    n++;
    validateLabelSelector(peer.podSelector, [...path, 'podSelector'], errs);
  }
  if (peer.namespaceSelector != null) {
    n++;
    validateLabelSelector(peer.namespaceSelector, [...path, 'namespaceSelector'], errs);
  }
  if (peer.ipBlock != null) {
    n++;
    const b = peer.ipBlock;
    const cidr = b.cidr === '' ? undefined : parseCidrOrUndefined(b.cidr);
    if (b.cidr === '') errs.required([...path, 'ipBlock', 'cidr']);
    else if (!cidr) errs.invalid([...path, 'ipBlock', 'cidr'], b.cidr, 'must be a valid CIDR (e.g. 10.0.0.0/8 or fd00::/64)');
    (b.except ?? []).forEach((e, i) => {
      const ep = [...path, 'ipBlock', 'except', i];
      const ex = parseCidrOrUndefined(e);
      if (!ex) errs.invalid(ep, e, 'must be a valid CIDR (e.g. 10.0.0.0/8 or fd00::/64)');
      else if (cidr && (!cidrContains(cidr, { family: ex.family, value: ex.network }) || ex.prefix <= cidr.prefix)) errs.invalid(ep, e, `must be a strict subset of \`cidr\` (${b.cidr})`);
    });
  }
  if (n === 0) errs.required(path, 'must specify a peer (podSelector, namespaceSelector or ipBlock)');
  else if (n > 1 && peer.ipBlock != null) errs.forbidden(path, 'may not specify both ipBlock and another peer');
}

function validateSpec(spec: Spec, errs: FieldErrors): void {
  const root = ['spec'];
  if (spec.podSelector) validateLabelSelector(spec.podSelector, [...root, 'podSelector'], errs);
  const rules = [
    ...(spec.ingress ?? []).map((r, i) => ({ path: [...root, 'ingress', i], peerField: 'from', peers: r.from, ports: r.ports })),
    ...(spec.egress ?? []).map((r, i) => ({ path: [...root, 'egress', i], peerField: 'to', peers: r.to, ports: r.ports })),
  ];
  for (const r of rules) {
    (r.peers ?? []).forEach((peer, j) => validatePeer(peer, [...r.path, r.peerField, j], errs));
    (r.ports ?? []).forEach((p, j) => validatePort(p, [...r.path, 'ports', j], errs));
  }
  const types = spec.policyTypes ?? [];
  if (types.length > POLICY_TYPES.length) {
    errs.invalid([...root, 'policyTypes'], types, 'may not specify more than two policyTypes');
    return;
  }
  types.forEach((t, i) => {
    if (!(POLICY_TYPES as readonly string[]).includes(t)) errs.unsupported([...root, 'policyTypes', i], t, POLICY_TYPES);
  });
}

/** The API server's defaulting: TCP for ports without a protocol; policyTypes inferred. */
function defaultSpec(spec: Spec): NonNullable<NetworkPolicyObject['spec']> {
  // `spec` is zod's parsed copy: defaulting it in place leaves the caller's object alone.
  const out = spec as NonNullable<NetworkPolicyObject['spec']> & Spec;
  out.podSelector ??= {};
  for (const dir of ['ingress', 'egress'] as const) {
    for (const rule of out[dir] ?? []) for (const p of rule.ports ?? []) p.protocol ??= 'TCP';
  }
  if (!out.policyTypes || out.policyTypes.length === 0) {
    // Ingress always; Egress only when there are egress rules (the list's length, not its presence).
    out.policyTypes = out.egress && out.egress.length > 0 ? ['Ingress', 'Egress'] : ['Ingress'];
  }
  return out as NonNullable<NetworkPolicyObject['spec']>;
}

/** Validates and defaults a NetworkPolicy; throws a UserError worded like the API server's. */
export function admitNetworkPolicy(obj: NetworkPolicyObject): NetworkPolicyObject {
  const errs = new FieldErrors();
  if (obj.apiVersion !== NETWORK_POLICY_API) {
    throw new UserError(`no matches for kind "NetworkPolicy" in version "${obj.apiVersion}" (use apiVersion: ${NETWORK_POLICY_API})`);
  }
  const parsed = specSchema.safeParse(obj.spec ?? {});
  if (!parsed.success) {
    errs.addZodIssues(parsed.error.issues, ['spec'], obj.spec);
    errs.throwIfAny('NetworkPolicy', obj.metadata.name, (m) => new UserError(m));
  }
  const spec = parsed.data as Spec;
  validateSpec(spec, errs);
  errs.throwIfAny('NetworkPolicy', obj.metadata.name, (m) => new UserError(m));
  const out: NetworkPolicyObject = { ...obj, spec: defaultSpec(spec) };
  return out;
}
