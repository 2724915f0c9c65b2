import { CniError, ErrorCode } from '../cni/errors.js';
import type { Result } from '../cni/result.js';
import { addressOf, asInternal } from '../cni/result.js';
import { IMPLEMENTED_VERSION } from '../cni/version.js';
import { AttachError } from '../datapath/attach.js';
import { checkNodeSide, checkPodSide, type CheckExpectation } from '../datapath/check.js';
import type { Datapath } from '../datapath/datapath.js';
import { derivedMac, hostIfName, macRefusal } from '../datapath/names.js';
import { buildResult, type AttachmentPlan } from '../datapath/plan.js';
import { ownerKey, type Ipam } from '../ipam/ipam.js';
import { NetnsError, netnsOpenError, type OpenNetns } from '../kernel/netns.js';
import { roundMs, type Logger } from '../util/log.js';
import { KeyedMutex, SharedExclusiveLock } from '../util/mutex.js';
import type { CniRequest } from './api.js';
import type { AttachmentRecord, AttachmentStore } from './attachment-store.js';

/**
 * ADD, DEL, CHECK, GC and STATUS on this node. Operations on one container run one at a time;
 * different containers run concurrently; GC runs alone (it must see no half-made attachment).
 */
export interface CniServiceDeps {
  ipam: Ipam;
  records: AttachmentStore;
  datapath: Datapath;
  log: Logger;
  /** Pod MTU when the network config does not set one. */
  mtu: number;
  /** Test-only fault point: pause every ADD at this phase (crash tests kill the agent there). */
  pauseAt?: { phase: AddPhase; ms: number };
  /** Called after attachments changed (ADD, DEL, GC), e.g. to record endpoints. */
  onChange?: () => void;
  /**
   * Called before an ADD returns: resolves once the pod's network policy is in force. If it
   * throws, the ADD is undone and fails with "try again later".
   */
  admit?: (rec: AttachmentRecord) => Promise<void>;
}

/** The moments of an ADD at which a crash leaves different state behind. */
export const ADD_PHASES = ['pending-written', 'reserved', 'host-side-done', 'attached', 'ready-written'] as const;
export type AddPhase = (typeof ADD_PHASES)[number];

export class CniService {
  private readonly perContainer = new KeyedMutex();
  private readonly gcLock = new SharedExclusiveLock();

  constructor(private readonly deps: CniServiceDeps) {}

  handle(req: CniRequest): Promise<Result | undefined> {
    switch (req.command) {
      case 'ADD':
        return this.serial(req, () => this.add(req));
      case 'DEL':
        return this.serial(req, () => this.del(req).then(() => undefined));
      case 'CHECK':
        return this.serial(req, () => this.check(req).then(() => undefined));
      case 'GC':
        return this.gcLock.runExclusive(() => this.gc(req)).then(() => undefined);
      case 'STATUS':
        return this.status().then(() => undefined);
    }
  }

  private async reached(phase: AddPhase): Promise<void> {
    const p = this.deps.pauseAt;
    if (p?.phase !== phase) return;
    this.deps.log.warn('test fault point: pausing ADD', { phase, ms: p.ms });
    await new Promise((r) => setTimeout(r, p.ms));
  }

  private serial<T>(req: CniRequest, fn: () => Promise<T>): Promise<T> {
    return this.gcLock.runShared(() => this.perContainer.run(req.containerId, fn));
  }

  /**
   * Opens the pod's netns for the length of one request, checked to be a network namespace and
   * not the node's own. Everything done inside or towards it uses this open file.
   */
  private async withNetns<T>(req: CniRequest, fn: (netns: OpenNetns) => Promise<T>): Promise<T> {
    const path = req.netns;
    const hint = 'it must name a network namespace, e.g. /run/netns/NAME or /proc/PID/ns/net';
    let netns: OpenNetns;
    try {
      // Where the forwarder could not open it, its errno says why; where it did, its open file is the netns.
      const refused = req.netnsErrno !== undefined ? netnsOpenError(path, req.netnsErrno) : undefined;
      if (refused) throw refused;
      netns = await this.deps.datapath.openNetns(path, req.netnsFd);
    } catch (err) {
      if (err instanceof NetnsError) throw new CniError(ErrorCode.InvalidEnvironment, err.message, hint);
      throw err;
    }
    try {
      if (netns.own) {
        throw new CniError(ErrorCode.InvalidNetns, `CNI_NETNS ${JSON.stringify(path).slice(1, -1)} is the node's own network namespace`, 'a pod needs a network namespace of its own');
      }
      return await fn(netns);
    } finally {
      await netns.close();
    }
  }

  private podMac(req: CniRequest): string {
    if (req.mac === undefined) return derivedMac(req.containerId, req.ifName, 'pod');
    const why = macRefusal(req.mac);
    if (why) {
      const code = req.macSource === 'CNI_ARGS MAC' ? ErrorCode.InvalidEnvironment : ErrorCode.InvalidNetworkConfig;
      throw new CniError(code, `invalid MAC from ${req.macSource ?? 'the request'}: ${why}`);
    }
    return req.mac.toLowerCase();
  }

  private mtuFor(req: CniRequest): number {
    const mtu = req.mtu ?? this.deps.mtu;
    const v6 = this.deps.ipam.pools.some((p) => p.family === 6);
    const min = v6 ? 1280 : 68;
    if (mtu < min || mtu > 65535) {
      throw new CniError(ErrorCode.InvalidNetworkConfig, `mtu ${mtu} is out of range`, `accepted: ${min}-65535${v6 ? ' (IPv6 needs at least 1280)' : ''}`);
    }
    return mtu;
  }

  private planFor(req: CniRequest, addresses: string[], hostIf: string): AttachmentPlan {
    return {
      hostIf,
      ifName: req.ifName,
      netns: req.netns,
      mtu: this.mtuFor(req),
      hostMac: derivedMac(req.containerId, req.ifName, 'host'),
      podMac: this.podMac(req),
      addresses: addresses.map((a) => {
        const v6 = a.includes(':');
        return { family: v6 ? 6 : 4, address: a, prefix: v6 ? 128 : 32 };
      }),
    };
  }

  private add(req: CniRequest): Promise<Result> {
    return this.withNetns(req, (netns) => this.addIn(req, netns));
  }

  private async addIn(req: CniRequest, netns: OpenNetns): Promise<Result> {
    const log = this.deps.log.child({ op: 'ADD', containerId: req.containerId, ifName: req.ifName });
    const { records, ipam, datapath } = this.deps;
    const owner = { containerId: req.containerId, ifName: req.ifName, network: req.network };
    const hostIf = hostIfName(req.containerId, req.ifName);
    // Validate before anything is written.
    this.planFor(req, [], hostIf);

    const existing = records.get(owner);
    if (existing && existing.netns !== req.netns) {
      throw new CniError(
        ErrorCode.AttachmentConflict,
        `container ${req.containerId} interface ${req.ifName} is already attached in netns ${existing.netns}`,
        'DEL that attachment first',
      );
    }
    if (existing?.state === 'ready' && existing.result) {
      // ADD again for a live attachment: the same answer, if the kernel still agrees.
      const plan = this.planFor(req, existing.addresses, existing.hostIf);
      const problems = await this.compare(plan, existing.result, req.ifName, netns);
      if (problems.length === 0) {
        log.info('ADD repeated for an intact attachment; returning its result');
        return asInternal(existing.result);
      }
      log.warn('ADD repeated for a damaged attachment; rebuilding it', { problems });
    }

    const pending: AttachmentRecord = {
      containerId: req.containerId,
      ifName: req.ifName,
      network: req.network,
      netns: req.netns,
      hostIf,
      state: 'pending',
      addresses: existing?.addresses ?? [],
      createdAt: existing?.createdAt ?? new Date().toISOString(),
      ...(req.pod ? { pod: req.pod } : {}),
    };
    // Where an ADD's time goes, in its log line (ms): IPAM, the links, the policy wait.
    const t0 = performance.now();
    const ms = { ipam: 0, attach: 0, policy: 0 };
    records.put(pending);
    await this.reached('pending-written');
    let addresses: string[];
    try {
      addresses = (await ipam.allocate(owner, req.requestedIps)).map((a) => a.address);
      ms.ipam = performance.now() - t0;
    } catch (err) {
      records.remove(owner);
      throw err;
    }
    const plan = this.planFor(req, addresses, hostIf);
    try {
      await this.reached('reserved');
      await datapath.attach(plan, netns, () => this.reached('host-side-done'));
      await this.reached('attached');
      ms.attach = performance.now() - t0 - ms.ipam;
    } catch (err) {
      await datapath.detach(hostIf).catch(() => undefined);
      await ipam.release(owner);
      records.remove(owner);
      throw toCniError(err);
    }
    const result = buildResult(plan, {
      cniVersion: IMPLEMENTED_VERSION,
      ...(req.dns ? { dns: req.dns } : {}),
      ...(req.prevResult ? { prevResult: req.prevResult } : {}),
    });
    const ready: AttachmentRecord = { ...pending, addresses, state: 'ready', result };
    records.put(ready);
    await this.reached('ready-written');
    if (this.deps.admit) {
      const t1 = performance.now();
      try {
        await this.deps.admit(ready);
        ms.policy = performance.now() - t1;
      } catch (err) {
        await datapath.detach(hostIf).catch(() => undefined);
        await ipam.release(owner);
        records.remove(owner);
        this.deps.onChange?.();
        throw new CniError(ErrorCode.TryAgainLater, `network policy for the pod could not be put in force: ${(err as Error).message}`, 'the pod was not attached; retry the ADD');
      }
    }
    log.info('attached', { addresses, hostIf, ms: { total: roundMs(performance.now() - t0), ipam: roundMs(ms.ipam), attach: roundMs(ms.attach), policy: roundMs(ms.policy) } });
    this.deps.onChange?.();
    return result;
  }

  private async del(req: CniRequest): Promise<void> {
    const { records, ipam, datapath } = this.deps;
    const key = { containerId: req.containerId, ifName: req.ifName };
    const rec = records.get(key);
    const hostIf = rec?.hostIf ?? hostIfName(req.containerId, req.ifName);
    const t0 = performance.now();
    try {
      await datapath.detach(hostIf);
    } catch (err) {
      throw toCniError(err);
    }
    const t1 = performance.now();
    const freed = await ipam.release(key);
    records.remove(key);
    if (rec || freed.length) {
      this.deps.log.info('detached', { op: 'DEL', containerId: req.containerId, ifName: req.ifName, freed, ms: { total: roundMs(performance.now() - t0), link: roundMs(t1 - t0), ipam: roundMs(performance.now() - t1) } });
      this.deps.onChange?.();
    }
  }

  private async compare(plan: AttachmentPlan, result: Result, ifName: string, netns: OpenNetns): Promise<string[]> {
    const idx = (result.interfaces ?? []).findIndex((i) => i.name === ifName && (i.sandbox ?? '') === netns.path);
    const iface = idx >= 0 ? result.interfaces?.[idx] : undefined;
    const expectation: CheckExpectation = {
      plan,
      expectedMac: iface?.mac,
      expectedAddresses: (result.ips ?? []).filter((ip) => ip.interface === idx).map((ip) => ip.address),
    };
    const problems: string[] = [];
    if (idx < 0) problems.push(`the result has no interface ${ifName} in netns ${netns.path}`);
    const [node, pod] = await Promise.all([
      this.deps.datapath.observe(),
      this.deps.datapath.observe(netns).catch((err: Error) => err),
    ]);
    problems.push(...checkNodeSide(expectation, node));
    if (pod instanceof Error) problems.push(`cannot inspect netns ${netns.path}: ${pod.message}`);
    else problems.push(...checkPodSide(expectation, pod));
    return problems;
  }

  private async check(req: CniRequest): Promise<void> {
    if (!req.prevResult) {
      throw new CniError(ErrorCode.InvalidNetworkConfig, 'Required prevResult missing', 'CHECK needs the ADD result as prevResult');
    }
    await this.withNetns(req, (netns) => this.checkIn(req, req.prevResult as Result, netns));
  }

  private async checkIn(req: CniRequest, prevResult: Result, netns: OpenNetns): Promise<void> {
    const rec = this.deps.records.get(req);
    const who = `container ${req.containerId} interface ${req.ifName}`;
    if (!rec || rec.state !== 'ready') {
      throw new CniError(ErrorCode.AttachmentNotFound, `${who} is not attached on this node`);
    }
    const problems: string[] = [];
    const held = this.deps.ipam.addressesOf(req);
    for (const a of rec.addresses) {
      if (!held.includes(a)) problems.push(`IPAM: the reservation of ${a} is missing`);
    }
    const listed = (prevResult.ips ?? []).map((ip) => addressOf(ip.address));
    for (const a of rec.addresses) {
      if (!listed.includes(a)) problems.push(`prevResult does not list the attachment's address ${a}`);
    }
    const plan = this.planFor(req, rec.addresses, rec.hostIf);
    problems.push(...(await this.compare(plan, prevResult, req.ifName, netns)));
    if (problems.length > 0) {
      throw new CniError(ErrorCode.CheckFailed, `CHECK failed for ${who}: ${problems.join('; ')}`);
    }
  }

  private async gc(req: CniRequest): Promise<void> {
    const { records, ipam, datapath, log } = this.deps;
    if (req.validAttachments === undefined) {
      log.warn('GC without a list of valid attachments: nothing removed', { network: req.network });
      return;
    }
    const valid = new Set(req.validAttachments.map(ownerKey));
    const errors: string[] = [];
    let removed = 0;
    for (const rec of records.list()) {
      if (rec.network !== req.network || valid.has(ownerKey(rec))) continue;
      try {
        await datapath.detach(rec.hostIf);
        await ipam.release(rec);
        records.remove(rec);
        removed++;
      } catch (err) {
        errors.push(`container ${rec.containerId} interface ${rec.ifName}: ${(err as Error).message}`);
      }
    }
    // Reservations and links that no record explains are leftovers of a crash.
    const freed = await ipam.collect((owner) => records.has(owner));
    const known = new Set(records.list().map((r) => r.hostIf));
    let links = 0;
    for (const name of await datapath.listHostIfs()) {
      if (known.has(name)) continue;
      try {
        if (await datapath.detach(name)) links++;
      } catch (err) {
        errors.push(`link ${name}: ${(err as Error).message}`);
      }
    }
    log.info('GC done', { network: req.network, removed, orphanAddresses: freed, orphanLinks: links, errors: errors.length });
    if (removed > 0) this.deps.onChange?.();
    if (errors.length > 0) {
      throw new CniError(ErrorCode.KernelFailure, `GC could not remove everything: ${errors.join('; ')}`);
    }
  }

  /**
   * 51 when existing pods are cut off too (the node stopped forwarding), 50 when only new pods
   * cannot be added (a full range).
   */
  async status(): Promise<void> {
    const off = await this.deps.datapath.forwardingOff(this.deps.ipam.pools.map((p) => p.family));
    if (off.length > 0) {
      throw new CniError(
        ErrorCode.NotAvailableLimitedConnectivity,
        `forwarding is off on this node (${off.map((k) => `${k}=0`).join(', ')}): pods cannot reach anything beyond the node`,
        `set ${off.map((k) => `${k}=1`).join(' and ')}, or restart the weft agent, which sets it`,
      );
    }
    for (const p of this.deps.ipam.status()) {
      if (p.free === '0') {
        throw new CniError(
          ErrorCode.NotAvailable,
          `no free IPv${p.family} address in pod range ${p.cidr} (${p.used} in use): new pods cannot be added`,
        );
      }
    }
  }
}

export function toCniError(err: unknown): CniError {
  if (err instanceof CniError) return err;
  if (err instanceof AttachError) {
    const code =
      err.reason === 'interface-exists'
        ? ErrorCode.InterfaceConflict
        : err.reason === 'netns-gone'
          ? ErrorCode.InvalidEnvironment
          : ErrorCode.KernelFailure;
    return new CniError(code, err.message, undefined, { cause: err });
  }
  const msg = err instanceof Error ? err.message : String(err);
  return new CniError(ErrorCode.KernelFailure, msg, undefined, { cause: err });
}
