import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { AdmissionError, admitObject, tryAdmit } from './admission.js';
import type { KObject } from './objects.js';

/** Values a hostile or careless writer puts into the datastore. */
export const HOSTILE_STRINGS = ['80 } ; add table inet pwned ; add element inet weft_policy x { 1 }', 'a\nb', 'a\u0000b', '"', "'", '#', ';', '{', '}', '../../etc', '/', ' ', '', 'x'.repeat(70_000), '\u001b[31m', 'é'];
export const HOSTILE_NUMBERS = [0, -1, 65536, 99999, 1.5, Number.MAX_SAFE_INTEGER];

const pod = (over: Record<string, unknown> = {}): Record<string, unknown> => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'web', namespace: 'shop', labels: { app: 'web' } },
  spec: { nodeName: 'node-1', containers: [{ name: 'app', ports: [{ name: 'http', containerPort: 80, protocol: 'TCP' }] }] },
  status: { phase: 'Running', podIPs: [{ ip: '10.244.1.5' }, { ip: 'fd00:10:244:1::5' }] },
  ...over,
});

function rejects(obj: unknown, msg: RegExp): void {
  assert.throws(() => admitObject(obj), (e: unknown) => e instanceof AdmissionError && msg.test(e.message), JSON.stringify(obj).slice(0, 200));
}

describe('admission of every kind Weft reads (pure)', () => {
  it('a Pod: ports 1-65535, IANA port names unique per pod, protocols, addresses, phases', () => {
    assert.deepEqual(admitObject(pod()), pod());
    rejects(pod({ spec: { containers: [{ name: 'app', ports: [{ name: 'http', containerPort: '80 } ; add table inet pwned' }] }] } }), /spec\.containers\[0\]\.ports\[0\]\.containerPort: Invalid value: .*must be a number/);
    rejects(pod({ spec: { containers: [{ name: 'app', ports: [{ containerPort: 99999 }] }] } }), /containerPort: Invalid value: 99999: must be between 1 and 65535, inclusive/);
    rejects(pod({ spec: { containers: [{ name: 'app', ports: [{ name: 'x;y', containerPort: 80 }] }] } }), /ports\[0\]\.name: Invalid value: "x;y"/);
    rejects(pod({ spec: { containers: [{ name: 'app', ports: [{ name: 'http', containerPort: 80 }, { name: 'http', containerPort: 81 }] }] } }), /Duplicate value: "http"/);
    rejects(pod({ spec: { containers: [{ name: 'app', ports: [{ containerPort: 80, protocol: 'ICMP' }] }] } }), /Unsupported value: "ICMP"/);
    rejects(pod({ status: { podIPs: [{ ip: 'not-an-ip' }] } }), /status\.podIPs\[0\]\.ip: Invalid value: "not-an-ip"/);
    rejects(pod({ status: { podIPs: [{ ip: 'fd00::5%eth0' }] } }), /status\.podIPs\[0\]\.ip: Invalid value: "fd00::5%eth0"/); // node:net's isIP takes it
    rejects(pod({ status: { phase: 'Running\n' } }), /status\.phase: Unsupported value/);
    rejects(pod({ metadata: { name: 'web', namespace: 'shop', labels: { app: 'a;b' } } }), /metadata\.labels: Invalid value: "a;b"/);
    rejects(pod({ metadata: { name: 'web\u0000', namespace: 'shop' } }), /metadata\.name: Invalid value: "web\\u0000"/);
    rejects(pod({ metadata: { name: 'web' } }), /metadata\.namespace: Required value/);
    // Anyone who may edit the Pod may write weft.io/pod-ips: a bad value must not hide the Pod.
    admitObject(pod({ metadata: { name: 'web', namespace: 'shop', annotations: { 'weft.io/pod-ips': '10.244.1.5 dev lo; x' } } }));
  });

  it('a Node: podCIDRs, addresses and Weft\'s annotations', () => {
    const node = (spec: unknown, annotations: Record<string, string> = {}): unknown => ({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'n1', annotations }, spec });
    admitObject(node({ podCIDRs: ['10.244.1.0/24', 'fd00:10:244:1::/64'], podCIDR: '10.244.1.0/24' }, { 'weft.io/node-ips': '198.18.0.11,fd00:198:18::b', 'weft.io/vxlan-mac': '02:00:00:00:00:0b', 'weft.io/backend': 'vxlan' }));
    admitObject(node({}, { 'weft.io/pod-cidrs': '10.244.1.0/24,fd00:10:244:1::/64' }));
    admitObject(node({}, { 'weft.io/pod-cidrs': '' }));
    rejects(node({}, { 'weft.io/pod-cidrs': '10.244.1.0/24,10.244.2.0/24' }), /weft\.io\/pod-cidrs.*one per family/);
    rejects(node({}, { 'weft.io/pod-cidrs': '0.0.0.0/0 via x' }), /weft\.io\/pod-cidrs/);
    rejects(node({ podCIDRs: ['10.244.1.0/24 via 1.2.3.4'] }), /spec\.podCIDRs\[0\]/);
    rejects(node({ podCIDRs: ['10.244.1.0/24', '10.244.2.0/24'] }), /at most one CIDR per family/);
    rejects(node({}, { 'weft.io/node-ips': '198.18.0.11 dev lo' }), /weft\.io\/node-ips/);
    rejects(node({}, { 'weft.io/vxlan-mac': '01:00:00:00:00:01' }), /unicast MAC/);
    rejects(node({}, { 'weft.io/backend': 'bgp' }), /Unsupported value: "bgp"/);
    const wgKey = Buffer.alloc(32, 7).toString('base64');
    admitObject(node({}, { 'weft.io/wireguard-public-key': wgKey, 'weft.io/wireguard-endpoint': '198.18.0.11:51820' }));
    admitObject(node({}, { 'weft.io/wireguard-public-key': wgKey, 'weft.io/wireguard-endpoint': '[fd00:198:18::b]:51820' }));
    rejects(node({}, { 'weft.io/wireguard-public-key': 'AAAA' }), /wireguard-public-key.*base64 of 32 bytes/);
    for (const bad of ['198.18.0.11', 'fd00::1:51820', '[198.18.0.11]:51820', '198.18.0.11:0', '198.18.0.11:51820 dev lo', '999.1.1.1:1']) rejects(node({}, { 'weft.io/wireguard-endpoint': bad }), /wireguard-endpoint.*an address and a UDP port/);
    rejects({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'n1' }, status: { addresses: [{ type: 'InternalIP', address: '1.2.3' }] } }, /status\.addresses\[0\]\.address/);
  });

  it('Weft\'s own kinds are strict: unknown fields, wrong types, bad values, names that do not match', () => {
    const ep = (spec: unknown): unknown => ({ apiVersion: 'weft.io/v1', kind: 'WeftEndpoint', metadata: { name: 'web', namespace: 'shop' }, spec });
    admitObject(ep({ node: 'n1', containerId: 'abc', ifName: 'eth0', addresses: ['10.244.1.5'], podName: 'web', labels: { app: 'web' } }));
    rejects(ep({ node: 'n1', containerId: 'abc', ifName: 'eth0', addresses: ['not-an-ip'] }), /spec\.addresses\[0\]/);
    rejects(ep({ node: 'n1', containerId: '../x', ifName: 'eth0', addresses: ['10.244.1.5'] }), /spec\.containerId/);
    rejects(ep({ node: 'n1', containerId: 'abc', ifName: 'eth0\nx', addresses: ['10.244.1.5'] }), /spec\.ifName/);
    rejects(ep({ node: 'n1', containerId: 'abc', ifName: 'eth0', addresses: ['10.244.1.5'], extra: 1 }), /unknown field "spec\.extra"/);
    const block = (name: string, spec: unknown): unknown => ({ apiVersion: 'weft.io/v1', kind: 'IPBlock', metadata: { name }, spec });
    admitObject(block('10-244-1-0-24', { cidr: '10.244.1.0/24', family: 4, node: 'n1' }));
    rejects(block('10-244-1-0-24', { cidr: '10.244.1.0/24', family: 6, node: 'n1' }), /spec\.family/);
    rejects(block('other', { cidr: '10.244.1.0/24', family: 4, node: 'n1' }), /must be 10-244-1-0-24/);
    const net = (spec: unknown): unknown => ({ apiVersion: 'weft.io/v1', kind: 'ClusterNetwork', metadata: { name: 'default' }, spec });
    admitObject(net({ podCIDRs: ['10.244.0.0/16'], blockSize: { ipv4: 24, ipv6: 64 }, backend: { type: 'vxlan', vni: 1, port: 8472 }, leaseDurationSeconds: 40 }));
    rejects(net({ podCIDRs: ['10.244.0.0/16'], blockSize: { ipv4: 8, ipv6: 64 }, backend: { type: 'vxlan' }, leaseDurationSeconds: 40 }), /blockSize\.ipv4/);
    rejects(net({ podCIDRs: ['10.244.0.0/16'], blockSize: { ipv4: 24, ipv6: 64 }, backend: { type: 'vxlan', port: 0 }, leaseDurationSeconds: 40 }), /backend\.port/);
    admitObject(net({ podCIDRs: ['10.244.0.0/16'], blockSize: { ipv4: 24, ipv6: 64 }, backend: { type: 'vxlan' }, leaseDurationSeconds: 40, ipam: 'kubernetes' }));
    rejects(net({ podCIDRs: ['10.244.0.0/16'], blockSize: { ipv4: 24, ipv6: 64 }, backend: { type: 'vxlan' }, leaseDurationSeconds: 40, ipam: 'dhcp' }), /spec\.ipam: Unsupported value: "dhcp": supported values: "cluster-pool", "kubernetes"/);
    admitObject(net({ podCIDRs: ['10.244.0.0/16'], blockSize: { ipv4: 24, ipv6: 64 }, backend: { type: 'vxlan' }, encryption: { type: 'wireguard', port: 51820 }, leaseDurationSeconds: 40 }));
    rejects(net({ podCIDRs: ['10.244.0.0/16'], blockSize: { ipv4: 24, ipv6: 64 }, backend: { type: 'vxlan' }, encryption: { type: 'ipsec', port: 51820 }, leaseDurationSeconds: 40 }), /spec\.encryption\.type: Unsupported value: "ipsec"/);
    rejects(net({ podCIDRs: ['10.244.0.0/16'], blockSize: { ipv4: 24, ipv6: 64 }, backend: { type: 'vxlan' }, encryption: { type: 'wireguard', port: 70000 }, leaseDurationSeconds: 40 }), /spec\.encryption\.port/);
    const lease = { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'n1', namespace: 'weft-system' }, spec: { renewTime: 'yesterday', leaseDurationSeconds: 10 } };
    rejects(lease, /spec\.renewTime: Invalid value: "yesterday"/);
  });

  it('policies keep their own admission; a WeftClusterPolicy rule name with a NUL byte is refused', () => {
    const cp = { apiVersion: 'weft.io/v1', kind: 'WeftClusterPolicy', metadata: { name: 'p' }, spec: { priority: 1, subject: { namespaces: {} }, egress: [{ name: 'a\u0000b', action: 'Deny', to: [{ namespaces: {} }] }] } };
    rejects(cp, /spec\.egress\[0\]\.name: Invalid value: "a\\u0000b"/);
  });

  it('anything at all is admitted or refused with an AdmissionError, never anything else (property)', () => {
    const hostile = fc.oneof(fc.constantFrom<unknown>(...HOSTILE_STRINGS, ...HOSTILE_NUMBERS, null, true, [], {}), fc.string({ unit: 'binary' }), fc.integer(), fc.double());
    const kinds = fc.constantFrom('Pod', 'Node', 'Namespace', 'Lease', 'NetworkPolicy', 'WeftClusterPolicy', 'WeftEndpoint', 'IPBlock', 'ClusterNetwork', 'ConfigMap', 'x');
    const obj = fc.record({
      apiVersion: fc.oneof(fc.constantFrom('v1', 'weft.io/v1', 'networking.k8s.io/v1', 'coordination.k8s.io/v1'), hostile),
      kind: fc.oneof(kinds, hostile),
      metadata: fc.oneof(fc.record({ name: fc.oneof(fc.constant('a'), hostile), namespace: fc.oneof(fc.constant('default'), hostile), labels: fc.oneof(fc.constant({ a: 'b' }), fc.dictionary(fc.string(), hostile)) }, { requiredKeys: ['name'] }), hostile),
      spec: fc.anything(),
      status: fc.anything(),
    }, { requiredKeys: ['apiVersion', 'kind', 'metadata'] });
    fc.assert(
      fc.property(obj, (o) => {
        const r = tryAdmit(o);
        if (!r.ok) {
          assert.ok(r.reason.length > 0 && !r.reason.startsWith('cannot be read'), r.reason);
          // It is printed to terminals and logs: only its own line breaks, no control character.
          assert.doesNotMatch(r.reason.replace(/\n\* /g, ' '), /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/, JSON.stringify(r.reason));
        }
      }),
      { numRuns: 3000 },
    );
  });

  it('what is admitted holds only valid values where Weft reads them (property: container ports)', () => {
    fc.assert(
      fc.property(fc.oneof(fc.integer(), fc.constantFrom<unknown>(...HOSTILE_STRINGS, ...HOSTILE_NUMBERS)), fc.oneof(fc.constant('http'), fc.constantFrom<unknown>(...HOSTILE_STRINGS)), (port, name) => {
        const r = tryAdmit(pod({ spec: { containers: [{ name: 'app', ports: [{ name, containerPort: port }] }] } }));
        if (!r.ok) return;
        const p = ((r.object as KObject & { spec: { containers: Array<{ ports: Array<{ containerPort: number; name: string }> }> } }).spec.containers[0]?.ports[0]) as { containerPort: number; name: string };
        assert.ok(Number.isInteger(p.containerPort) && p.containerPort >= 1 && p.containerPort <= 65535);
        assert.match(p.name, /^[a-z0-9-]{1,15}$/);
      }),
      { numRuns: 2000 },
    );
  });
});
