import { NODE_ANNOTATIONS, type LeaseObject, type NodeObject } from '../model/objects.js';
import { compareText } from '../util/compare-text.js';

/**
 * Whether a node's agent is alive, from its lease (pure) — reported, never acted on by tearing
 * down a data path. A lease is fresh while renewTime plus its duration lies ahead. An observer
 * that was not connected to the datastore for a whole lease duration cannot tell: it treats
 * everyone as alive until it has been, so an outage of the datastore never looks like every
 * agent dying at once.
 *
 * Only an agent silent for longer than the cluster's node grace (ClusterNetwork
 * nodeGraceSeconds, 24 h unless set; 0 = never) makes its node count as gone (longDead): a
 * machine decommissioned without leaving, whose blocks would otherwise stay taken forever.
 */
export const DEFAULT_NODE_GRACE_SECONDS = 24 * 3600;

export function leaseExpiresAt(lease: LeaseObject | undefined): number | undefined {
  const renew = lease?.spec?.renewTime;
  const seconds = lease?.spec?.leaseDurationSeconds;
  if (!renew || !seconds) return undefined;
  const t = Date.parse(renew);
  return Number.isNaN(t) ? undefined : t + seconds * 1000;
}

export interface LivenessView {
  now: number;
  /** When the observer's view became current again, undefined while disconnected. */
  connectedSince: number | undefined;
  leaseDurationSeconds: number;
}

/** The observer has watched long enough that a lease not renewed means an agent not renewing. */
function canJudge(v: LivenessView): boolean {
  return v.connectedSince !== undefined && v.now - v.connectedSince >= v.leaseDurationSeconds * 1000;
}

export function isAlive(lease: LeaseObject | undefined, v: LivenessView): boolean {
  if (!canJudge(v)) return true;
  const exp = leaseExpiresAt(lease);
  return exp !== undefined && exp > v.now;
}

export interface SilentAgent {
  node: string;
  /** When its lease was last renewed (ISO), if it ever was. */
  lastSeen: string | undefined;
  /** How long it has been silent, in seconds, from the lease's expiry on. */
  silentSeconds: number | undefined;
}

/**
 * Nodes (other than `self`) whose agent is not renewing its lease. Only members count — Nodes
 * an agent registered or annotated (Weft's backend annotation): on Kubernetes a Node no agent
 * has joined yet, or one whose agent left, is no silent agent.
 */
export function silentAgents(nodes: NodeObject[], leases: ReadonlyMap<string, LeaseObject>, self: string, v: LivenessView): SilentAgent[] {
  const out: SilentAgent[] = [];
  for (const n of nodes) {
    const name = n.metadata.name;
    if (name === self || n.metadata.annotations?.[NODE_ANNOTATIONS.backend] === undefined) continue;
    const lease = leases.get(name);
    if (isAlive(lease, v)) continue;
    const renew = lease?.spec?.renewTime ?? undefined;
    const t = renew ? Date.parse(renew) : Number.NaN;
    out.push({ node: name, lastSeen: renew, silentSeconds: Number.isNaN(t) ? undefined : Math.max(0, Math.round((v.now - t) / 1000)) });
  }
  return out.sort((a, b) => compareText(a.node, b.node));
}

/** Silent agents whose lease expired more than `graceSeconds` ago (never when 0). */
export function longDead(silent: SilentAgent[], leases: ReadonlyMap<string, LeaseObject>, v: LivenessView, graceSeconds: number): string[] {
  if (graceSeconds <= 0) return [];
  return silent.filter((s) => {
    const exp = leaseExpiresAt(leases.get(s.node));
    return exp !== undefined && v.now - exp > graceSeconds * 1000;
  }).map((s) => s.node);
}

/** "45s", "2m", "3h 5m", "2d 4h": how long an agent has been silent, for people. */
export function formatSilence(seconds: number): string {
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)}h ${Math.floor((seconds % 3600) / 60)}m`;
  return `${Math.floor(seconds / 86_400)}d ${Math.floor((seconds % 86_400) / 3600)}h`;
}
