import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseManifests } from './manifest.js';
import { admitNetworkPolicy } from './network-policy.js';
import type { NetworkPolicyObject } from './objects.js';
import { npYaml } from '../../test/helpers/policy-yaml.js';

const np = (spec: string, name = 'p'): string => npYaml('x', name, spec);

const admitted = (spec: string): NonNullable<NetworkPolicyObject["spec"]> => (parseManifests(np(spec), "np.yaml")[0] as NetworkPolicyObject).spec as NonNullable<NetworkPolicyObject["spec"]>;

function rejects(spec: string, ...expected: string[]): void {
  assert.throws(
    () => parseManifests(np(spec), 'np.yaml'),
    (err: Error) => {
      for (const e of expected) assert.ok(err.message.includes(e), `expected "${e}" in:\n${err.message}`);
      assert.ok(err.message.startsWith('np.yaml: The NetworkPolicy "p" is invalid:'), err.message);
      return true;
    },
  );
}

describe('NetworkPolicy defaulting (what the API server stores)', () => {
  it('infers policyTypes: Ingress always, Egress only when there are egress rules', () => {
    assert.deepEqual(admitted('podSelector: {}').policyTypes, ['Ingress']);
    assert.deepEqual(admitted('podSelector: {}\negress: []').policyTypes, ['Ingress'], 'an empty egress list does not isolate egress');
    assert.deepEqual(admitted('podSelector: {}\negress: [{}]').policyTypes, ['Ingress', 'Egress']);
    assert.deepEqual(admitted('podSelector: {}\npolicyTypes: [Egress]').policyTypes, ['Egress'], 'given policyTypes are kept');
  });

  it('defaults a copy: the object read from the datastore is left as it was (snapshots share it)', () => {
    const deepFreeze = <T>(o: T): T => {
      if (o && typeof o === 'object') for (const v of Object.values(o)) deepFreeze(v);
      return Object.freeze(o);
    };
    const raw = deepFreeze({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: 'p', namespace: 'x' }, spec: { ingress: [{ ports: [{ port: 80 }] }] } } as NetworkPolicyObject);
    const out = admitNetworkPolicy(raw);
    assert.deepEqual(out.spec?.ingress?.[0]?.ports, [{ port: 80, protocol: 'TCP' }]);
    assert.deepEqual(raw.spec, { ingress: [{ ports: [{ port: 80 }] }] });
  });

  it('defaults the protocol to TCP and an absent podSelector to {}', () => {
    const s = admitted('ingress:\n- ports: [{port: 80}, {port: 53, protocol: UDP}]');
    assert.deepEqual(s.podSelector, {});
    assert.deepEqual(s.ingress?.[0]?.ports, [
      { port: 80, protocol: 'TCP' },
      { port: 53, protocol: 'UDP' },
    ]);
  });

  it('accepts every valid form: named ports, ranges, AND peers, ipBlocks of both families', () => {
    const s = admitted(`
podSelector: {matchExpressions: [{key: app, operator: In, values: [a, b]}, {key: tier, operator: DoesNotExist}]}
ingress:
- from:
  - namespaceSelector: {matchLabels: {team: x}}
    podSelector: {matchLabels: {role: client}}
  - ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}
  - ipBlock: {cidr: "fd00::/8", except: ["fd00:1::/32"]}
  ports: [{port: http}, {port: 8000, endPort: 8080, protocol: UDP}, {protocol: SCTP}]
`);
    assert.equal(s.ingress?.[0]?.from?.length, 3);
  });

  it('accepts an ipBlock cidr with host bits set, as the API server does', () => {
    admitted('ingress:\n- from: [{ipBlock: {cidr: 10.0.0.1/8}}]');
  });
});

describe('NetworkPolicy validation (worded like the API server)', () => {
  it('endPort needs a numeric port at or below it', () => {
    rejects('ingress:\n- ports: [{port: 80, endPort: 79}]', 'spec.ingress[0].ports[0].endPort: Invalid value: 79: must be greater than or equal to `port`');
    rejects('ingress:\n- ports: [{endPort: 90}]', 'spec.ingress[0].ports[0].port: Required value: must be specified when endPort is specified');
    rejects('egress:\n- ports: [{port: http, endPort: 90}]', 'spec.egress[0].ports[0].endPort: Forbidden: may not be specified when `port` is non-numeric');
  });

  it('ports: protocol, number range and port names', () => {
    rejects('ingress:\n- ports: [{port: 80, protocol: ICMP}]', 'spec.ingress[0].ports[0].protocol: Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP"');
    rejects('ingress:\n- ports: [{port: 0}]', 'spec.ingress[0].ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive');
    rejects('ingress:\n- ports: [{port: 70000}]', 'must be between 1 and 65535');
    rejects('ingress:\n- ports: [{port: "Http"}]', 'must contain only alpha-numeric characters');
    rejects('ingress:\n- ports: [{port: "123"}]', 'must contain at least one letter');
    rejects('ingress:\n- ports: [{port: "a-very-long-port-name"}]', 'must be no more than 15 characters');
    rejects('ingress:\n- ports: [{port: true}]', 'spec.ingress[0].ports[0].port: Invalid value: true: must be a port number or name');
  });

  it('except must lie strictly inside cidr, in the same family', () => {
    rejects('ingress:\n- from: [{ipBlock: {cidr: 10.0.0.0/16, except: [10.1.0.0/24]}}]', 'spec.ingress[0].from[0].ipBlock.except[0]: Invalid value: "10.1.0.0/24": must be a strict subset of `cidr`');
    rejects('ingress:\n- from: [{ipBlock: {cidr: 10.0.0.0/16, except: [10.0.0.0/16]}}]', 'strict subset');
    rejects('ingress:\n- from: [{ipBlock: {cidr: 10.0.0.0/16, except: ["fd00::/64"]}}]', 'strict subset');
    rejects('ingress:\n- from: [{ipBlock: {cidr: 10.0.0.0/33}}]', 'spec.ingress[0].from[0].ipBlock.cidr: Invalid value: "10.0.0.0/33": must be a valid CIDR');
    rejects('ingress:\n- from: [{ipBlock: {cidr: ""}}]', 'spec.ingress[0].from[0].ipBlock.cidr: Required value');
  });

  it('a peer names something, and an ipBlock stands alone', () => {
    rejects('ingress:\n- from: [{}]', 'spec.ingress[0].from[0]: Required value: must specify a peer');
    rejects('egress:\n- to: [{ipBlock: {cidr: 10.0.0.0/8}, podSelector: {}}]', 'spec.egress[0].to[0]: Forbidden: may not specify both ipBlock and another peer');
  });

  it('selector syntax: operators, values, label keys and values', () => {
    rejects('podSelector: {matchExpressions: [{key: app, operator: In}]}', "spec.podSelector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'");
    rejects('podSelector: {matchExpressions: [{key: app, operator: Exists, values: [a]}]}', 'spec.podSelector.matchExpressions[0].values: Forbidden');
    rejects('podSelector: {matchExpressions: [{key: app, operator: Equals, values: [a]}]}', 'spec.podSelector.matchExpressions[0].operator: Invalid value: "Equals": not a valid selector operator');
    rejects('podSelector: {matchLabels: {"-bad": x}}', 'spec.podSelector.matchLabels: Invalid value: "-bad": name part must consist');
    rejects('podSelector: {matchLabels: {app: "bad value"}}', 'spec.podSelector.matchLabels: Invalid value: "bad value": a valid label must be an empty string');
    rejects('ingress:\n- from: [{namespaceSelector: {matchLabels: {"Example.com/x": y}}}]', 'prefix part must be a lowercase DNS subdomain');
  });

  it('policyTypes: only Ingress and Egress, at most two', () => {
    rejects('policyTypes: [Ingres]', 'spec.policyTypes[0]: Unsupported value: "Ingres": supported values: "Egress", "Ingress"');
    rejects('policyTypes: [Ingress, Egress, Ingress]', 'may not specify more than two policyTypes');
  });

  it('unknown fields are refused (a misspelt podSelector must not select everything)', () => {
    rejects('podselector: {matchLabels: {app: db}}', 'unknown field "spec.podselector"');
    rejects('ingress:\n- fromm: [{podSelector: {}}]', 'unknown field "spec.ingress[0].fromm"');
  });

  it('lists every problem at once', () => {
    rejects('ingress:\n- ports: [{port: 0}, {port: 80, protocol: icmp}]', '* spec.ingress[0].ports[0].port', '* spec.ingress[0].ports[1].protocol');
  });

  it('wrong apiVersion', () => {
    assert.throws(() => parseManifests('apiVersion: extensions/v1beta1\nkind: NetworkPolicy\nmetadata: {name: p}\nspec: {}\n', 'f'), /no matches for kind "NetworkPolicy" in version "extensions\/v1beta1"/);
  });
});
