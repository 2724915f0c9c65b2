import type { BatchRunner } from '../kernel/batch-runner.js';
import { ip, IpError, isIpNotFound, passedFdPath, type IpCommand } from '../kernel/ip.js';
import type { OpenNetns } from '../kernel/netns.js';
import { ipv6Enabled, writeSysctls } from '../kernel/sysctl.js';
import { hostIfSysctls, hostSetupCommands, podSetupCommands, type AttachmentPlan } from './plan.js';
import { isHostIfName } from './names.js';

/** Why an attachment could not be made; the agent maps these to CNI error codes. */
export class AttachError extends Error {
  readonly code = 'ERR_ATTACH';
  constructor(
    message: string,
    readonly reason: 'interface-exists' | 'netns-gone' | 'kernel',
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'AttachError';
  }
}

/** The kernel makes no IPv6 configuration for a link below this MTU. */
const IPV6_MIN_MTU = 1280;

/**
 * Makes the attachment on the hot path, run by `runner` (the rtnetlink helper, or `ip`
 * processes): the node side in two batches with the node end's IPv6 settings between them (the
 * pair; then up, addresses, routes), then the pod side. A stale node-side veth of the same
 * attachment (left by a crash) is removed and the step retried once. On any later failure the
 * pair is deleted again, so a failed attach leaves nothing behind.
 */
export async function attach(runner: BatchRunner, plan: AttachmentPlan, netns: OpenNetns, afterHostSide?: () => Promise<void>): Promise<void> {
  await createHostSide(runner, plan, netns, true);
  try {
    await afterHostSide?.();
    await runner.run(podSetupCommands(plan), { netns });
  } catch (err) {
    await detach(runner, plan.hostIf).catch(() => undefined);
    throw new AttachError(`configuring ${plan.ifName} in netns ${plan.netns} failed: ${(err as Error).message}`, 'kernel', {
      cause: err,
    });
  }
}

async function createHostSide(runner: BatchRunner, plan: AttachmentPlan, netns: OpenNetns, retry: boolean): Promise<void> {
  // The pod's netns is the descriptor passed as fd 3, never its path as text.
  const [create, ...configure] = hostSetupCommands(plan, passedFdPath(0)) as [IpCommand, ...IpCommand[]];
  try {
    await runner.run([create], { passed: netns.fd });
  } catch (err) {
    return createFailed(runner, plan, netns, retry, err);
  }
  try {
    // Below IPv6's minimum MTU the kernel gives the link no IPv6 at all: nothing to set.
    if (plan.mtu >= IPV6_MIN_MTU && (await ipv6Enabled())) writeSysctls(hostIfSysctls(plan.hostIf));
    await runner.run(configure);
  } catch (err) {
    await detach(runner, plan.hostIf).catch(() => undefined);
    throw new AttachError(`setting up ${plan.hostIf} on the node failed: ${(err as Error).message}`, 'kernel', { cause: err });
  }
}

async function createFailed(runner: BatchRunner, plan: AttachmentPlan, netns: OpenNetns, retry: boolean, err: unknown): Promise<void> {
  if (!(err instanceof IpError)) throw err;
  if (err.line === 0 && err.reason === 'exists') {
    if (retry && (await linkExists(plan.hostIf))) {
      await detach(runner, plan.hostIf);
      return createHostSide(runner, plan, netns, false);
    }
    throw new AttachError(
      `interface ${plan.ifName} already exists in netns ${plan.netns}`,
      'interface-exists',
      { cause: err },
    );
  }
  if (err.reason === 'invalid-netns') {
    throw new AttachError(`netns ${plan.netns} disappeared during ADD`, 'netns-gone', { cause: err });
  }
  throw new AttachError(`creating ${plan.hostIf} on the node failed: ${err.message}`, 'kernel', { cause: err });
}

export async function linkExists(name: string, netns?: string): Promise<boolean> {
  try {
    await ip(['link', 'show', 'dev', name], netns !== undefined ? { netns } : {});
    return true;
  } catch (err) {
    if (isIpNotFound(err)) return false;
    throw err;
  }
}

/** Deletes the node end (the kernel removes the pod end and every route with it). */
export async function detach(runner: BatchRunner, hostIf: string): Promise<boolean> {
  try {
    await runner.run([['link', 'del', 'dev', hostIf]]);
    return true;
  } catch (err) {
    if (isIpNotFound(err)) return false;
    throw err;
  }
}

/** Weft's node-side veths on this node, by their derived names. */
export async function listHostIfs(): Promise<string[]> {
  const out = await ip(['-json', 'link', 'show', 'type', 'veth']);
  const links = JSON.parse(out || '[]') as Array<{ ifname: string }>;
  return links.map((l) => l.ifname).filter(isHostIfName);
}
