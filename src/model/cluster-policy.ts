import * as z from 'zod/mini';
import { parseCidrMasked } from '../ipam/cidr.js';
import { UserError } from '../util/user-error.js';
import { FieldErrors, PORT_RANGE_PROBLEM, portNameProblem, validPortNumber, type FieldPath } from './field-errors.js';
import { labelSelectorSchema, validateLabelSelector, type LabelSelectorInput } from './label-selector.js';
import { PORT_PROTOCOLS } from './network-policy.js';
import { WEFT_API, type WeftClusterPolicyObject } from './objects.js';

/**
 * WeftClusterPolicy admission: shape, content and defaults (protocol TCP). The limits follow
 * AdminNetworkPolicy's (priority 0-1000, at most 100 rules per direction).
 */
export const MAX_PRIORITY = 1000;
export const MAX_RULES = 100;
const ACTIONS = ['Allow', 'Deny', 'Pass'] as const;

const podsSchema = z.strictObject({ namespaceSelector: z.nullish(labelSelectorSchema), podSelector: z.nullish(labelSelectorSchema) });
const peerSchema = z.strictObject({
  namespaces: z.nullish(labelSelectorSchema),
  pods: z.nullish(podsSchema),
  networks: z.nullish(z.array(z.string())),
});
const portSchema = z.strictObject({
  portNumber: z.nullish(z.strictObject({ protocol: z.nullish(z.string()), port: z.int() })),
  portRange: z.nullish(z.strictObject({ protocol: z.nullish(z.string()), start: z.int(), end: z.int() })),
  namedPort: z.nullish(z.string()),
});
const ruleSchema = z.strictObject({
  name: z.nullish(z.string()),
  action: z.string(),
  from: z.nullish(z.array(peerSchema)),
  to: z.nullish(z.array(peerSchema)),
  ports: z.nullish(z.array(portSchema)),
});
const specSchema = z.strictObject({
  priority: z.int(),
  subject: z.strictObject({ namespaces: z.nullish(labelSelectorSchema), pods: z.nullish(podsSchema) }),
  ingress: z.nullish(z.array(ruleSchema)),
  egress: z.nullish(z.array(ruleSchema)),
});

type Spec = z.infer<typeof specSchema>;
type Rule = z.infer<typeof ruleSchema>;
type PeerInput = z.infer<typeof peerSchema>;

function validateSelectors(sels: Array<[string, LabelSelectorInput | null | undefined]>, path: FieldPath, errs: FieldErrors): void {
  for (const [field, sel] of sels) if (sel) validateLabelSelector(sel, [...path, field], errs);
}

function exactlyOne(o: Record<string, unknown>, fields: string[], path: FieldPath, errs: FieldErrors): boolean {
  const set = fields.filter((f) => o[f] != null);
  if (set.length === 1) return true;
  if (set.length === 0) errs.required(path, `must specify one of: ${fields.join(', ')}`);
  else errs.forbidden(path, `may specify only one of: ${set.join(', ')}`);
  return false;
}

function validatePeer(peer: PeerInput, path: FieldPath, errs: FieldErrors): void {
  if (!exactlyOne(peer, ['namespaces', 'pods', 'networks'], path, errs)) return;
  if (peer.namespaces) validateLabelSelector(peer.namespaces, [...path, 'namespaces'], errs);
  if (peer.pods) validateSelectors([['namespaceSelector', peer.pods.namespaceSelector], ['podSelector', peer.pods.podSelector]], [...path, 'pods'], errs);
  if (peer.networks) {
    if (peer.networks.length === 0) errs.required([...path, 'networks'], 'must list at least one CIDR');
    peer.networks.forEach((n, i) => {
      try {
        parseCidrMasked(n);
      } catch {
        errs.invalid([...path, 'networks', i], n, 'must be a valid CIDR (e.g. 10.0.0.0/8 or fd00::/64)');
      }
    });
  }
}

function validateProtocol(p: string | null | undefined, path: FieldPath, errs: FieldErrors): void {
  if (p != null && !(PORT_PROTOCOLS as readonly string[]).includes(p)) errs.unsupported(path, p, PORT_PROTOCOLS);
}

function validateRule(rule: Rule, dir: 'ingress' | 'egress', path: FieldPath, errs: FieldErrors): void {
  if (!(ACTIONS as readonly string[]).includes(rule.action)) errs.unsupported([...path, 'action'], rule.action, ACTIONS);
  if (rule.name != null && (rule.name.length > 100 || /[\x00-\x1f\x7f]/.test(rule.name))) errs.invalid([...path, 'name'], rule.name, 'must be no more than 100 characters, without control characters');
  const field = dir === 'ingress' ? 'from' : 'to';
  const wrong = dir === 'ingress' ? 'to' : 'from';
  if (rule[wrong] != null) errs.forbidden([...path, wrong], `an ${dir} rule names its peers in \`${field}\``);
  const peers = rule[field];
  if (!peers || peers.length === 0) errs.required([...path, field], 'must list at least one peer (namespaces, pods or networks)');
  (peers ?? []).forEach((p, i) => validatePeer(p, [...path, field, i], errs));
  (rule.ports ?? []).forEach((p, i) => {
    const pp = [...path, 'ports', i];
    if (!exactlyOne(p, ['portNumber', 'portRange', 'namedPort'], pp, errs)) return;
    if (p.portNumber) {
      validateProtocol(p.portNumber.protocol, [...pp, 'portNumber', 'protocol'], errs);
      if (!validPortNumber(p.portNumber.port)) errs.invalid([...pp, 'portNumber', 'port'], p.portNumber.port, PORT_RANGE_PROBLEM);
    }
    if (p.portRange) {
      const r = p.portRange;
      validateProtocol(r.protocol, [...pp, 'portRange', 'protocol'], errs);
      if (!validPortNumber(r.start)) errs.invalid([...pp, 'portRange', 'start'], r.start, PORT_RANGE_PROBLEM);
      if (!validPortNumber(r.end)) errs.invalid([...pp, 'portRange', 'end'], r.end, PORT_RANGE_PROBLEM);
      else if (r.end <= r.start) errs.invalid([...pp, 'portRange', 'end'], r.end, 'must be greater than `start`');
    }
    if (p.namedPort != null) {
      const why = portNameProblem(p.namedPort);
      if (why) errs.invalid([...pp, 'namedPort'], p.namedPort, why);
    }
  });
}

function validateSpec(spec: Spec, errs: FieldErrors): void {
  if (spec.priority < 0 || spec.priority > MAX_PRIORITY) errs.invalid(['spec', 'priority'], spec.priority, `must be between 0 and ${MAX_PRIORITY} (lower is evaluated first)`);
  if (exactlyOne(spec.subject, ['namespaces', 'pods'], ['spec', 'subject'], errs)) {
    if (spec.subject.namespaces) validateLabelSelector(spec.subject.namespaces, ['spec', 'subject', 'namespaces'], errs);
    const pods = spec.subject.pods;
    if (pods) validateSelectors([['namespaceSelector', pods.namespaceSelector], ['podSelector', pods.podSelector]], ['spec', 'subject', 'pods'], errs);
  }
  for (const dir of ['ingress', 'egress'] as const) {
    const rules = spec[dir] ?? [];
    if (rules.length > MAX_RULES) errs.tooMany(['spec', dir], rules.length, MAX_RULES);
    rules.forEach((r, i) => validateRule(r, dir, ['spec', dir, i], errs));
  }
}

function defaultSpec(spec: Spec): WeftClusterPolicyObject['spec'] {
  // `spec` is zod's parsed copy: defaulting it in place leaves the caller's object alone.
  const out = spec;
  for (const dir of ['ingress', 'egress'] as const) {
    for (const r of out[dir] ?? []) {
      for (const p of r.ports ?? []) {
        if (p.portNumber) p.portNumber.protocol ??= 'TCP';
        if (p.portRange) p.portRange.protocol ??= 'TCP';
      }
    }
  }
  return out as WeftClusterPolicyObject['spec'];
}

export function admitClusterPolicy(obj: WeftClusterPolicyObject): WeftClusterPolicyObject {
  if (obj.apiVersion !== WEFT_API) throw new UserError(`no matches for kind "WeftClusterPolicy" in version "${obj.apiVersion}" (use apiVersion: ${WEFT_API})`);
  const errs = new FieldErrors();
  const parsed = specSchema.safeParse(obj.spec);
  if (!parsed.success) {
    errs.addZodIssues(parsed.error.issues, ['spec'], obj.spec);
    errs.throwIfAny('WeftClusterPolicy', obj.metadata.name, (m) => new UserError(m));
  }
  validateSpec(parsed.data as Spec, errs);
  errs.throwIfAny('WeftClusterPolicy', obj.metadata.name, (m) => new UserError(m));
  return { ...obj, spec: defaultSpec(parsed.data as Spec) };
}
