/**
 * Runs one backend operation in the netns it was started in (a node netns of the backend
 * contract test: never the machine's own) and prints the result as JSON.
 *   nsenter --net=NS node backend-worker.js '{"type":…,"op":…,"ctx":…,"peers":[…]}'
 * The backend comes from the registry, as the agent's does; backends keep no state between
 * calls (they read the kernel, and the state dir: WireGuard's key), so one process per
 * operation is the agent's situation after a restart.
 */
import { BACKEND_REGISTRY, type BackendContext } from '../../src/datapath/backend.js';
import type { BackendOp, BackendOpResult } from '../../src/datapath/backend.contract.js';
import type { TransportType } from '../../src/datapath/backend-type.js';
import type { Peer } from '../../src/datapath/peer.js';

const req = JSON.parse(process.argv[2] ?? '{}') as { type: TransportType; op: BackendOp; ctx: BackendContext; peers: Peer[] };
const entry = BACKEND_REGISTRY[req.type];
const backend = entry.create(req.ctx);
const out: BackendOpResult = { podMtu: backend.podMtu, problems: [], changes: 0, published: entry.published(req.ctx) };
if (req.op === 'setup') await backend.setup();
else if (req.op === 'teardown') await backend.teardown();
else Object.assign(out, await backend.reconcile(req.peers));
process.stdout.write(JSON.stringify(out) + '\n');
