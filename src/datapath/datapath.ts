import { ipProcessRunner, type BatchRunner } from '../kernel/batch-runner.js';
import { openNetns, type HeldNetns, type OpenNetns } from '../kernel/netns.js';
import { readSysctl } from '../kernel/sysctl.js';
import { attach, detach, listHostIfs } from './attach.js';
import { observeNetns, type ObservedNetns } from './observe.js';
import type { AttachmentPlan } from './plan.js';

/** What the CNI service needs from the kernel, in one seam. */
export interface Datapath {
  /** `afterHostSide` runs between the node-side and pod-side steps (a test fault point). */
  attach(plan: AttachmentPlan, netns: OpenNetns, afterHostSide?: () => Promise<void>): Promise<void>;
  /** False when it was already gone. */
  detach(hostIf: string): Promise<boolean>;
  listHostIfs(): Promise<string[]>;
  /** undefined: the node's own netns. */
  observe(netns?: OpenNetns): Promise<ObservedNetns>;
  /** Opens a pod's netns by the path a runtime gave, or as the forwarder holds it; NetnsError when it is not one. */
  openNetns(path: string, via?: HeldNetns): Promise<OpenNetns>;
  /** The forwarding sysctls of these families that are off on the node. */
  forwardingOff(families: ReadonlyArray<4 | 6>): Promise<string[]>;
}

/** Pods reach anything beyond their veth only if the node forwards their packets. */
export const FORWARDING_SYSCTL: Readonly<Record<4 | 6, string>> = {
  4: 'net.ipv4.ip_forward',
  6: 'net.ipv6.conf.all.forwarding',
};

async function forwardingOff(families: ReadonlyArray<4 | 6>): Promise<string[]> {
  const off: string[] = [];
  for (const f of families) if ((await readSysctl(FORWARDING_SYSCTL[f])) !== '1') off.push(FORWARDING_SYSCTL[f]);
  return off;
}

/** The kernel datapath, its pod batches run by `runner` (the agent's rtnetlink helper, or `ip`). */
export function kernelDatapath(runner: BatchRunner = ipProcessRunner): Datapath {
  return {
    attach: (plan, netns, afterHostSide) => attach(runner, plan, netns, afterHostSide),
    detach: (hostIf) => detach(runner, hostIf),
    listHostIfs,
    observe: observeNetns,
    openNetns,
    forwardingOff,
  };
}
