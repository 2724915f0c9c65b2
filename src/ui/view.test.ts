import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { LabStatus } from '../lab/lab.js';
import { parseManifests } from '../model/manifest.js';
import type { NamespaceObject, NodeObject, PodObject } from '../model/objects.js';
import type { FlowRecord } from '../observe/flow.js';
import { buildSnapshot, type SnapshotInput } from '../policy/from-objects.js';
import { withChanges } from '../policy/what-if.js';
import { UserError } from '../util/user-error.js';
import { PAGE_HTML, PAGE_SCRIPT } from './page.js';
import { matrixView, parseMatrixQuery, parseTraceQuery, topologyView, traceQueryOfFlow, traceView } from './view.js';
import { B_FROM_C } from '../../test/helpers/flow-policies.js';

/** What the UI's JSON says: topology, matrix and trace from a snapshot; the page's own rules. */
const ns = (name: string, labels: Record<string, string> = {}): NamespaceObject => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } });
const pod = (namespace: string, name: string, ips: string[], labels: Record<string, string>, node: string): PodObject => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { namespace, name, labels },
  spec: { nodeName: node, containers: [{ name: 'c' }] },
  status: { phase: 'Running', podIPs: ips.map((ip) => ({ ip })) },
});
const node = (name: string, ip: string): NodeObject => ({ apiVersion: 'v1', kind: 'Node', metadata: { name, annotations: { 'weft.io/node-ips': ip } } });

const BASE: SnapshotInput = {
  namespaces: [ns('x'), ns('empty')],
  pods: [pod('x', 'b', ['10.0.1.2', 'fd00::1:2'], { app: 'b' }, 'node-2'), pod('x', 'a', ['10.0.0.2'], { app: 'a', '<b>': 'x' }, 'node-1')],
  weftEndpoints: [],
  policies: [],
  clusterPolicies: [],
  nodes: [node('node-1', '198.18.0.11'), node('node-2', '198.18.0.12')],
};
const POLICY = B_FROM_C;
const input = withChanges(BASE, parseManifests(POLICY, 't.yaml'), 'apply').input;
const { snapshot } = buildSnapshot(input);

const STATUS: LabStatus = {
  name: 'dev',
  backend: 'vxlan',
  encryption: 'none',
  datastore: 'file',
  nodes: [
    { name: 'node-1', netns: 'wl-dev.node-1', ips: ['198.18.0.11'], agent: 'running', blocks: ['10.0.0.0/24'], peers: ['node-2'], problems: [], rejected: [], datastoreConnected: true, mtu: 1450 },
    { name: 'node-2', netns: 'wl-dev.node-2', ips: ['198.18.0.12'], agent: 'down', blocks: [], peers: [], problems: [], rejected: [], datastoreConnected: false },
  ],
  namespaces: [],
  pods: [],
  external: { netns: 'wl-dev.external', ips: [] },
};

describe('weft ui: topology, matrix and trace as JSON', () => {
  it('topology: the nodes as the lab reports them; pods grouped by namespace, sorted, with labels and addresses; the policies', () => {
    const t = topologyView(STATUS, snapshot, ['a problem']);
    assert.deepEqual(t.nodes.map((n) => [n.name, n.agent, n.blocks, n.peers, n.mtu]), [
      ['node-1', 'running', ['10.0.0.0/24'], ['node-2'], 1450],
      ['node-2', 'down', [], [], undefined],
    ]);
    assert.deepEqual(t.namespaces.map((n) => [n.name, n.pods.map((p) => p.name)]), [['empty', []], ['x', ['a', 'b']]]);
    const a = t.namespaces[1]?.pods[0];
    assert.deepEqual(a, { name: 'a', node: 'node-1', labels: { app: 'a', '<b>': 'x' }, addresses: ['10.0.0.2'] });
    assert.deepEqual(t.policies, ['NetworkPolicy x/b-from-c']);
    assert.deepEqual(t.problems, ['a problem']);
  });

  it('matrix: pods sorted, each cell the evaluator\'s verdict, null where a family is missing', () => {
    const m = matrixView(snapshot, parseMatrixQuery(new URLSearchParams('port=80&protocol=tcp')));
    assert.deepEqual(m, { protocol: 'TCP', port: 80, family: 4, pods: ['x/a', 'x/b'], cells: [[true, false], [true, true]] });
    const v6 = matrixView(snapshot, parseMatrixQuery(new URLSearchParams('protocol=ICMP&family=6')));
    assert.deepEqual(v6.cells, [[null, null], [null, true]]);
    assert.equal(v6.port, undefined);
  });

  it('refuses bad matrix and trace queries with what is accepted', () => {
    assert.throws(() => parseMatrixQuery(new URLSearchParams('port=0&protocol=TCP')), UserError);
    assert.throws(() => parseMatrixQuery(new URLSearchParams('protocol=TCP')), /expected PORT\/PROTOCOL/);
    assert.throws(() => parseMatrixQuery(new URLSearchParams('port=80&protocol=GRE')), UserError);
    assert.throws(() => parseMatrixQuery(new URLSearchParams('port=80&family=5')), /expected 4 or 6/);
    assert.throws(() => parseTraceQuery(new URLSearchParams('src=x/a&port=80')), /give src and dst/);
    assert.throws(() => traceView(snapshot, parseTraceQuery(new URLSearchParams('src=x/a&dst=x/nope&port=80'))), /no pod x\/nope/);
  });

  it('trace: `weft policy trace`\'s lines, naming the isolating policy', () => {
    const t = traceView(snapshot, parseTraceQuery(new URLSearchParams('src=x/a&dst=x/b&port=80&protocol=TCP')));
    assert.equal(t.allowed, false);
    assert.match(t.lines.join('\n'), /ingress to x\/b: BLOCKED — isolated by x\/b-from-c, and no rule of theirs allows it/);
    assert.equal(traceView(snapshot, parseTraceQuery(new URLSearchParams('src=x/b&dst=x/a&protocol=icmp'))).allowed, true);
  });

  it('a flow record\'s trace: its pods (or addresses), destination port, protocol and family', () => {
    const r: FlowRecord = {
      time: '2026-01-01T00:00:00.000Z', node: 'node-2', verdict: 'dropped', direction: 'ingress', family: 4, protocol: 'TCP',
      source: { address: '10.0.0.2', port: 40000, pod: 'x/a' }, destination: { address: '10.0.1.2', port: 80, pod: 'x/b' },
    };
    assert.deepEqual(traceQueryOfFlow(r), { src: 'x/a', dst: 'x/b', protocol: 'TCP', port: 80, family: 4 });
    assert.deepEqual(traceQueryOfFlow({ ...r, protocol: 'ICMPv6', family: 6, source: { address: 'fd00::9' }, destination: { address: 'fd00::1:2', pod: 'x/b' } }), { src: 'fd00::9', dst: 'x/b', protocol: 'ICMP', family: 6 });
    assert.equal(traceQueryOfFlow({ ...r, protocol: '47' }), null);
  });

  it('the page builds its DOM from text only: no HTML parsing of data, no outside resources', () => {
    for (const sink of ['innerHTML', 'outerHTML', 'insertAdjacentHTML', 'document.write', 'eval(', 'new Function']) assert.equal(PAGE_SCRIPT.includes(sink), false, sink);
    assert.doesNotMatch(PAGE_HTML, /(src|href)=["']?(https?:)?\/\//);
    // The script parses (it is a string here: tsc does not check it).
    assert.doesNotThrow(() => new Function(PAGE_SCRIPT));
  });
});
