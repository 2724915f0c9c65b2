/**
 * The brute force's port ranges for policy tests: every port any rule or pod names cuts the
 * 1-65535 range of a protocol, so one port per range stands for all of them.
 */
import type { PortMatch, Snapshot } from '../../src/policy/ir.js';

/** Ranges between cut points: [1, c1-1], [c1, c2-1], … up to 65535. */
function segmentsFrom(cuts: Set<number>): Array<[number, number]> {
  const sorted = [...cuts, 1].filter((p) => p >= 1 && p <= 65535);
  const uniq = [...new Set(sorted)].sort((a, b) => a - b);
  return uniq.map((lo, i) => [lo, (uniq[i + 1] ?? 65536) - 1]);
}

function addCuts(cuts: Set<number>, pm: PortMatch, protocol: string): void {
  if (pm.protocol !== protocol || pm.port === undefined) return;
  cuts.add(pm.port);
  cuts.add((pm.endPort ?? pm.port) + 1);
}

/**
 * The port ranges of one protocol inside which no verdict can differ: every port a rule or a
 * pod names starts a range and ends one. Checking one port per range covers all 65535.
 */
export function portSegments(snapshots: Snapshot[], protocol: 'TCP' | 'UDP' | 'SCTP'): Array<[number, number]> {
  const cuts = new Set<number>();
  for (const s of snapshots) {
    for (const p of s.policies) for (const r of [...(p.ingress ?? []), ...(p.egress ?? [])]) if (r.ports !== 'any') r.ports.forEach((pm) => addCuts(cuts, pm, protocol));
    for (const c of s.clusterPolicies) for (const r of [...c.ingress, ...c.egress]) if (r.ports !== 'any') r.ports.forEach((pm) => addCuts(cuts, pm, protocol));
    for (const e of s.endpoints) for (const np of e.ports) if (np.protocol === protocol) addCuts(cuts, { protocol, port: np.port }, protocol);
  }
  return segmentsFrom(cuts);
}
