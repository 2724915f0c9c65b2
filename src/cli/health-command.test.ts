import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { HealthReply } from '../agent/api.js';
import { notReady } from './health-command.js';

const base: HealthReply = { ok: true, pools: [], attachments: 0, memory: { rss: 0, heapUsed: 0, heapTotal: 0, external: 0 }, mtu: 1450 };
const cluster = { node: 'n1', backend: 'vxlan', blocks: [], peers: [], problems: [], datastoreConnected: true, silentAgents: [], nodeGraceSeconds: 86400 };

describe('weft health --ready', () => {
  it('ready: a single node; a cluster node with its datastore connected and a policy table in force', () => {
    assert.equal(notReady(base), undefined);
    assert.equal(notReady({ ...base, cluster, policy: { syncs: 3, problems: [] } }), undefined);
  });
  it('not ready, saying why: a problem, the datastore away, no policy table yet', () => {
    assert.equal(notReady({ ...base, ok: false }), 'the agent reports a problem');
    assert.equal(notReady({ ...base, cluster: { ...cluster, datastoreConnected: false } }), 'the datastore is not connected');
    assert.equal(notReady({ ...base, cluster, policy: { syncs: 0, problems: [] } }), 'no policy table is in force yet');
  });
});
