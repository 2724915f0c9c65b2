import type { LeaseObject } from '../model/objects.js';

/**
 * Whether a node is alive, from its lease (pure). A lease is fresh while renewTime plus its
 * duration lies ahead. An observer that was not connected to the datastore for a whole lease
 * duration cannot tell — it treats everyone as alive until it has been, so an outage of the
 * datastore never looks like every node dying at once.
 */
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

export function isAlive(lease: LeaseObject | undefined, v: LivenessView): boolean {
  if (v.connectedSince === undefined) return true;
  if (v.now - v.connectedSince < v.leaseDurationSeconds * 1000) return true;
  const exp = leaseExpiresAt(lease);
  return exp !== undefined && exp > v.now;
}
