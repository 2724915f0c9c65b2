import { GATEWAY_V4, GATEWAY_V6, type AttachmentPlan } from './plan.js';
import type { ObservedNetns, ObservedRoute } from './observe.js';

/**
 * CHECK as a pure comparison: what the attachment should be (its plan, and the MAC and
 * addresses the runtime's prevResult lists for the pod interface) against what the kernel
 * reports. Returns every problem found, phrased for a person, not just the first.
 */
export interface CheckExpectation {
  plan: AttachmentPlan;
  /** The pod interface's MAC in prevResult (a later plugin such as tuning may have changed it). */
  expectedMac: string | undefined;
  /** Addresses (CIDR) prevResult assigns to the pod interface. */
  expectedAddresses: string[];
}

function hostPart(dst: string): string {
  return dst.replace(/\/(32|128)$/, '');
}

function hasRoute(routes: ObservedRoute[], dst: string, dev: string, gateway?: string): boolean {
  return routes.some(
    (r) =>
      hostPart(r.dst) === dst &&
      r.nexthops.some((h) => h.dev === dev && (gateway === undefined || h.gateway === gateway)),
  );
}

export function checkNodeSide(e: CheckExpectation, node: ObservedNetns): string[] {
  const p = e.plan;
  const link = node.links.find((l) => l.name === p.hostIf);
  if (!link) return [`on the node: interface ${p.hostIf} (the pod's veth peer) is missing`];
  const problems: string[] = [];
  if (!link.up) problems.push(`on the node: interface ${p.hostIf} is down`);
  if (link.kind !== undefined && link.kind !== 'veth') problems.push(`on the node: ${p.hostIf} is a ${link.kind}, not a veth`);
  for (const a of p.addresses) {
    if (!hasRoute(node.routes, a.address, p.hostIf)) {
      problems.push(`on the node: route ${a.address}/${a.prefix} dev ${p.hostIf} is missing`);
    }
  }
  for (const family of new Set(p.addresses.map((a) => a.family))) {
    const gw = family === 4 ? GATEWAY_V4 : GATEWAY_V6;
    if (!node.addresses.some((x) => x.dev === p.hostIf && x.address === gw)) {
      problems.push(`on the node: gateway address ${gw} is missing on ${p.hostIf}`);
    }
  }
  return problems;
}

export function checkPodSide(e: CheckExpectation, pod: ObservedNetns): string[] {
  const p = e.plan;
  const where = `in netns ${p.netns}`;
  const link = pod.links.find((l) => l.name === p.ifName);
  if (!link) return [`${where}: interface ${p.ifName} is missing`];
  const problems: string[] = [];
  if (!link.up) problems.push(`${where}: interface ${p.ifName} is down`);
  if (link.kind !== undefined && link.kind !== 'veth') problems.push(`${where}: ${p.ifName} is a ${link.kind}, not a veth`);
  if (e.expectedMac !== undefined && link.mac.toLowerCase() !== e.expectedMac.toLowerCase()) {
    problems.push(`${where}: ${p.ifName} has MAC ${link.mac}, but the result says ${e.expectedMac}`);
  }
  for (const cidr of e.expectedAddresses) {
    const [addr, prefix] = cidr.split('/');
    const found = pod.addresses.some(
      (a) => a.dev === p.ifName && a.address === addr && (prefix === undefined || a.prefix === Number(prefix)),
    );
    if (!found) problems.push(`${where}: address ${cidr} is missing on ${p.ifName}`);
  }
  for (const a of p.addresses) {
    const gw = a.family === 4 ? GATEWAY_V4 : GATEWAY_V6;
    if (!hasRoute(pod.routes, 'default', p.ifName, gw)) {
      problems.push(`${where}: default route via ${gw} dev ${p.ifName} is missing`);
    }
  }
  return problems;
}
