import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { admitClusterPolicy } from './cluster-policy.js';
import { parseManifests } from './manifest.js';
import type { WeftClusterPolicyObject } from './objects.js';
import { wcpYaml } from '../../test/helpers/policy-yaml.js';

const wcp = (spec: string): string => wcpYaml('c', spec);

const rejects = (spec: string, expected: string): void => {
  assert.throws(
    () => parseManifests(wcp(spec), 'c.yaml'),
    (err: Error) => err.message.startsWith('c.yaml: The WeftClusterPolicy "c" is invalid:') && err.message.includes(expected),
  );
};

describe('WeftClusterPolicy admission', () => {
  it('accepts the documented shape and defaults protocols to TCP', () => {
    const o = parseManifests(
      wcp(`
priority: 10
subject: {pods: {podSelector: {matchLabels: {tier: frontend}}}}
egress:
- name: no-db
  action: Deny
  to: [{pods: {podSelector: {matchLabels: {tier: db}}}}]
  ports: [{portNumber: {port: 5432}}, {portRange: {start: 8000, end: 9000, protocol: UDP}}, {namedPort: sql}]
- action: Pass
  to: [{namespaces: {}}, {networks: [10.0.0.0/8, "fd00::/8"]}]
`),
      'c.yaml',
    )[0] as WeftClusterPolicyObject;
    assert.equal(o.spec.egress?.[0]?.ports?.[0]?.portNumber?.protocol, 'TCP');
    assert.equal(o.spec.egress?.[0]?.ports?.[1]?.portRange?.protocol, 'UDP');
    assert.equal(o.metadata.namespace, undefined, 'cluster-scoped');
  });

  it('defaults a copy: the object read from the datastore is left as it was', () => {
    const rule = Object.freeze({ action: 'Deny', to: Object.freeze([Object.freeze({ namespaces: Object.freeze({}) })]), ports: Object.freeze([Object.freeze({ portNumber: Object.freeze({ port: 53 }) })]) });
    const spec = Object.freeze({ priority: 1, subject: Object.freeze({ pods: Object.freeze({ podSelector: Object.freeze({}) }) }), egress: Object.freeze([rule]) });
    const raw = Object.freeze({ apiVersion: 'weft.io/v1', kind: 'WeftClusterPolicy', metadata: Object.freeze({ name: 'c' }), spec }) as unknown as WeftClusterPolicyObject;
    assert.equal(admitClusterPolicy(raw).spec.egress?.[0]?.ports?.[0]?.portNumber?.protocol, 'TCP');
    assert.equal((raw.spec.egress?.[0]?.ports?.[0]?.portNumber as { protocol?: string }).protocol, undefined);
  });

  it('refuses what it cannot mean', () => {
    rejects('priority: 1001\nsubject: {namespaces: {}}', 'spec.priority: Invalid value: 1001: must be between 0 and 1000');
    rejects('priority: 1\nsubject: {}', 'spec.subject: Required value: must specify one of: namespaces, pods');
    rejects('priority: 1\nsubject: {namespaces: {}, pods: {}}', 'spec.subject: Forbidden: may specify only one of: namespaces, pods');
    rejects('priority: 1\nsubject: {namespaces: {}}\ningress: [{action: Block, from: [{namespaces: {}}]}]', 'spec.ingress[0].action: Unsupported value: "Block": supported values: "Allow", "Deny", "Pass"');
    rejects('priority: 1\nsubject: {namespaces: {}}\ningress: [{action: Deny}]', 'spec.ingress[0].from: Required value');
    rejects('priority: 1\nsubject: {namespaces: {}}\ningress: [{action: Deny, to: [{namespaces: {}}], from: [{namespaces: {}}]}]', 'spec.ingress[0].to: Forbidden');
    rejects('priority: 1\nsubject: {namespaces: {}}\negress: [{action: Deny, to: [{networks: [10.0.0.0/40]}]}]', 'spec.egress[0].to[0].networks[0]: Invalid value: "10.0.0.0/40"');
    rejects('priority: 1\nsubject: {namespaces: {}}\negress: [{action: Deny, to: [{namespaces: {}}], ports: [{portRange: {start: 90, end: 80}}]}]', 'spec.egress[0].ports[0].portRange.end: Invalid value: 80: must be greater than `start`');
    rejects('priority: 1\nsubject: {namespaces: {}}\negress: [{action: Deny, to: [{namespaces: {}}], ports: [{namedPort: http, portNumber: {port: 80}}]}]', 'spec.egress[0].ports[0]: Forbidden: may specify only one of: portNumber, namedPort');
    rejects('subject: {namespaces: {}}', 'spec.priority: Required value');
    rejects('priority: 1\nsubject: {namespaces: {matchLabels: {a: b}}, pod: {}}', 'unknown field "spec.subject.pod"');
  });
});
