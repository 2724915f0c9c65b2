import { inspectNetns, isOwnNetns, type NetnsKind } from '../kernel/netns.js';
import { attach, detach, listHostIfs } from './attach.js';
import { observeNetns, type ObservedNetns } from './observe.js';
import type { AttachmentPlan } from './plan.js';

/** What the CNI service needs from the kernel, in one seam. */
export interface Datapath {
  /** `afterHostSide` runs between the node-side and pod-side steps (a test fault point). */
  attach(plan: AttachmentPlan, afterHostSide?: () => Promise<void>): Promise<void>;
  /** False when it was already gone. */
  detach(hostIf: string): Promise<boolean>;
  listHostIfs(): Promise<string[]>;
  /** undefined: the node's own netns. */
  observe(netns?: string): Promise<ObservedNetns>;
  inspectNetns(path: string): Promise<NetnsKind>;
  isOwnNetns(path: string): Promise<boolean>;
}

export const kernelDatapath: Datapath = {
  attach,
  detach,
  listHostIfs,
  observe: observeNetns,
  inspectNetns,
  isOwnNetns,
};
