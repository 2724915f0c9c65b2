import fc from 'fast-check';
import { blockName } from '../../src/model/objects.js';

/**
 * Hostile datastore values for the fuzz tests: every kind Weft reads, each a well-formed
 * template with one field replaced by something drawn from separators, quotes, braces,
 * newlines, NUL and other control characters, huge strings, wrong types and out-of-range
 * numbers — and values that are not JSON at all. Written straight under the store's keys,
 * past `weft apply` and past the store's own checks.
 */
export const HOSTILE_STRINGS: readonly string[] = [
  '80 } ; add table inet pwned ; add element inet weft_policy x { 1 }',
  'x\nadd table inet pwned',
  'a\u0000b',
  '"',
  "'",
  '#',
  ';',
  '{',
  '}',
  '../../etc/passwd',
  '/',
  ' ',
  '',
  '\r\n',
  '\u001b[2J',
  '$(touch /tmp/weft-pwned)',
  'é',
  '10.0.0.1 dev lo',
  '10.244.1.0/24 via 10.9.9.9',
  'not-an-ip',
  'fd00::1%eth0',
  '10.244.0.5%0',
  'x'.repeat(70_000),
];
export const HOSTILE_NUMBERS: readonly number[] = [0, -1, 65536, 99999, 1.5, -0.5, 2 ** 53, Number.MAX_VALUE];
export const WRONG_TYPES: readonly unknown[] = [null, true, [], {}, [1, 2], { a: 1 }];

export const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom<unknown>(...HOSTILE_STRINGS),
  fc.constantFrom<unknown>(...HOSTILE_NUMBERS),
  fc.constantFrom<unknown>(...WRONG_TYPES),
  fc.string({ unit: 'binary', maxLength: 40 }),
);

/** Where each kind lives and what a well-formed one looks like (as Weft and Kubernetes write them). */
interface Template {
  kind: string;
  namespace?: string;
  make(name: string): Record<string, unknown>;
  /** Paths into the object where a hostile value goes. */
  paths: ReadonlyArray<ReadonlyArray<string | number>>;
}

const TEMPLATES: readonly Template[] = [
  {
    kind: 'Pod',
    namespace: 'x',
    make: (name) => ({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace: 'x', labels: { app: 'evil' } },
      spec: { nodeName: 'node-1', containers: [{ name: 'c', ports: [{ name: 'http', containerPort: 80, protocol: 'TCP' }] }] },
      status: { phase: 'Running', podIPs: [{ ip: '10.244.0.200' }] },
    }),
    paths: [['metadata', 'name'], ['metadata', 'labels', 'app'], ['metadata', 'labels'], ['spec', 'nodeName'], ['spec', 'containers', 0, 'ports', 0, 'containerPort'], ['spec', 'containers', 0, 'ports', 0, 'name'], ['spec', 'containers', 0, 'ports', 0, 'protocol'], ['spec', 'hostNetwork'], ['status', 'podIPs', 0, 'ip'], ['status', 'phase'], ['spec']],
  },
  {
    kind: 'Namespace',
    make: (name) => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels: { team: 'evil' } } }),
    paths: [['metadata', 'name'], ['metadata', 'labels', 'team'], ['metadata', 'labels'], ['metadata']],
  },
  {
    kind: 'NetworkPolicy',
    namespace: 'x',
    make: (name) => ({
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { name, namespace: 'x' },
      spec: { podSelector: { matchLabels: { app: 'nobody' } }, ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/8', except: ['10.1.0.0/16'] } }], ports: [{ port: 'http', protocol: 'TCP' }] }] },
    }),
    paths: [['spec', 'podSelector', 'matchLabels', 'app'], ['spec', 'ingress', 0, 'from', 0, 'ipBlock', 'cidr'], ['spec', 'ingress', 0, 'from', 0, 'ipBlock', 'except', 0], ['spec', 'ingress', 0, 'ports', 0, 'port'], ['spec', 'ingress', 0, 'ports', 0, 'protocol'], ['spec', 'ingress', 0, 'ports', 0, 'endPort'], ['spec', 'policyTypes'], ['spec']],
  },
  {
    kind: 'WeftClusterPolicy',
    make: (name) => ({
      apiVersion: 'weft.io/v1',
      kind: 'WeftClusterPolicy',
      metadata: { name },
      spec: { priority: 500, subject: { pods: { podSelector: { matchLabels: { app: 'nobody' } } } }, egress: [{ name: 'r', action: 'Deny', to: [{ networks: ['192.0.2.0/24'] }], ports: [{ portNumber: { port: 81, protocol: 'TCP' } }] }] },
    }),
    paths: [['spec', 'priority'], ['spec', 'egress', 0, 'name'], ['spec', 'egress', 0, 'action'], ['spec', 'egress', 0, 'to', 0, 'networks', 0], ['spec', 'egress', 0, 'ports', 0, 'portNumber', 'port'], ['spec', 'subject']],
  },
  {
    kind: 'WeftEndpoint',
    namespace: 'x',
    make: (name) => ({
      apiVersion: 'weft.io/v1',
      kind: 'WeftEndpoint',
      metadata: { name, namespace: 'x' },
      spec: { node: 'node-1', containerId: 'evil', ifName: 'eth0', addresses: ['10.244.0.201'], podName: name, labels: { app: 'evil' } },
    }),
    paths: [['spec', 'addresses', 0], ['spec', 'addresses'], ['spec', 'node'], ['spec', 'containerId'], ['spec', 'ifName'], ['spec', 'podName'], ['spec', 'labels', 'app']],
  },
  {
    kind: 'Node',
    make: (name) => ({
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name, annotations: { 'weft.io/node-ips': '198.18.0.99', 'weft.io/vxlan-mac': '02:00:00:00:00:99', 'weft.io/backend': 'vxlan' } },
      spec: { podCIDRs: ['10.244.200.0/24'] },
    }),
    paths: [['metadata', 'annotations', 'weft.io/node-ips'], ['metadata', 'annotations', 'weft.io/vxlan-mac'], ['metadata', 'annotations', 'weft.io/backend'], ['spec', 'podCIDRs', 0], ['spec', 'podCIDRs']],
  },
  {
    kind: 'Lease',
    namespace: 'weft-system',
    make: (name) => ({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name, namespace: 'weft-system' }, spec: { holderIdentity: name, leaseDurationSeconds: 10, renewTime: new Date().toISOString() } }),
    paths: [['spec', 'renewTime'], ['spec', 'leaseDurationSeconds'], ['spec', 'holderIdentity']],
  },
  {
    kind: 'IPBlock',
    // Each its own block (outside the lab's range), named as IPBlocks are: after their CIDR.
    make: (name) => {
      const cidr = `10.250.${(Number(name.slice(2)) || 0) % 250}.0/24`;
      return { apiVersion: 'weft.io/v1', kind: 'IPBlock', metadata: { name: blockName(cidr) }, spec: { cidr, family: 4, node: 'evil' } };
    },
    paths: [['spec', 'cidr'], ['spec', 'family'], ['spec', 'node']],
  },
];

export interface HostileWrite {
  kind: string;
  name: string;
  namespace: string | undefined;
  /** The bytes stored under the key. */
  value: string;
}

function setPath(o: Record<string, unknown>, path: ReadonlyArray<string | number>, v: unknown): void {
  let cur: Record<string | number, unknown> = o;
  for (const p of path.slice(0, -1)) cur = cur[p] as Record<string | number, unknown>;
  cur[path[path.length - 1] as string | number] = v;
}

/** `count` hostile objects, the same ones for the same seed; names h-0, h-1, … (IPBlocks: by CIDR). */
export function hostileWrites(seed: number, count: number): HostileWrite[] {
  const arb = fc.record({ t: fc.nat(TEMPLATES.length - 1), p: fc.nat(100), v: hostileValue });
  return fc.sample(arb, { seed, numRuns: count }).map(({ t, p, v }, i) => {
    const tpl = TEMPLATES[t] as Template;
    const name = `h-${i}`;
    const obj = tpl.make(name);
    setPath(obj, tpl.paths[p % tpl.paths.length] as ReadonlyArray<string | number>, v);
    const meta = obj['metadata'] as { name?: unknown } | undefined;
    const keyName = tpl.kind === 'IPBlock' ? String(meta?.name) : name;
    return { kind: tpl.kind, name: keyName, namespace: tpl.namespace, value: JSON.stringify(obj) };
  });
}

/** Values that are not JSON objects at all, under keys of every kind. */
export function undecodableWrites(): HostileWrite[] {
  const raw = ['{not json', '', 'null', '[1,2,3]', '"a string"', '\u0000\u0001\u0002', 'x'.repeat(10_000)];
  return TEMPLATES.map((t, i) => ({ kind: t.kind, name: `u-${i}`, namespace: t.namespace, value: raw[i % raw.length] as string }));
}
