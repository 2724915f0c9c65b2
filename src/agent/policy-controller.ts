import { randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { addressOf } from '../cni/result.js';
import { assertTable, diffScript, fullScript, tableSize, type NftTable } from '../nftables/ruleset.js';
import type { Informer } from '../datastore/informer.js';
import type { InformerSet } from '../datastore/informer-set.js';
import type { Store } from '../datastore/store.js';
import { nftDeleteTable, NftError, nftListChain, nftListSet, nftProcessRunner, type NftRunner } from '../kernel/nft.js';
import { writeFileAtomic } from '../util/atomic-file.js';
import type { NamespaceObject, NetworkPolicyObject, NodeObject, PodObject, WeftClusterPolicyObject, WeftEndpointObject } from '../model/objects.js';
import { allowChain, CompileCache, compilePolicy, generationInForce, needsNewGeneration, POLICY_TABLE, VERSION_SET, versionInForce, withGeneration, withVersions, type LocalAttachment } from '../policy/compile.js';
import { buildSnapshot, snapshotFingerprint, type LocalEndpoint } from '../policy/from-objects.js';
import type { Snapshot } from '../policy/ir.js';
import { roundMs, type Logger } from '../util/log.js';
import { Runner } from '../util/runner.js';
import type { PolicyStatus } from './api.js';
import type { AttachmentRecord, AttachmentStore } from './attachment-store.js';
import type { Controller } from './controller.js';

/**
 * Enforces NetworkPolicy and WeftClusterPolicy on this node: informers on the objects policy
 * reads, one level-triggered sync that compiles the node's table and writes only the change.
 *
 * Nothing is written before every informer has listed once — an empty cache would mean "no
 * policies" and open every pod. A pod's ADD waits for a sync that includes it (`admit`);
 * until then the table drops its address, so there is no moment it is reachable unchecked.
 */
export interface PolicyControllerConfig {
  store: Store;
  /** The agent's shared informers: this controller takes its kinds from them. */
  informers: InformerSet;
  nodeName: string;
  /** This node's pod ranges. */
  localBlocks: string[];
  records: AttachmentStore;
  log: Logger;
  /** Where the applied table is kept, so a restarted agent adopts it instead of rewriting it. */
  stateDir?: string;
  /** How scripts reach the kernel: the agent's nftables helper, or an `nft` process each. */
  nft?: NftRunner;
  /**
   * Where every pod has a Pod object (Kubernetes): how long an ADD waits for its Pod to be
   * visible before it fails — without the Pod, its labels and so its policy are unknown.
   * Absent: a pod without one is taken as the agent's records describe it (the lab).
   */
  podWaitMs?: number;
  /** Flow recording: the table logs drops and new connections to NFLOG (compile.ts). */
  flows?: boolean;
  /** Told of each sync that wrote or checked the table: whether it worked, and how long it took. */
  onSync?: (ok: boolean, seconds: number) => void;
}

/** The table last applied, and its generation (in the state dir; dropped with a reboot). */
export const APPLIED_TABLE_FILE = 'policy-table.json';

const ADMIT_TIMEOUT_MS = 10_000;
/** A whole-table rewrite now and then repairs changes made behind the agent's back. */
const FULL_EVERY_MS = 5 * 60_000;

/** 1-65535, wrapping; never 0 (a new connection's mark). */
const nextGeneration = (g: number): number => (g % 0xffff) + 1;
const nextVersion = (v: number): number => (v % 0x7fffffff) + 1;

export class PolicyController implements Controller {
  readonly name = 'policy';
  private stopped = false;
  private readonly unsubscribe: Array<() => void> = [];
  private readonly namespaces: Informer<NamespaceObject>;
  private readonly pods: Informer<PodObject>;
  private readonly endpoints: Informer<WeftEndpointObject>;
  private readonly policies: Informer<NetworkPolicyObject>;
  private readonly clusterPolicies: Informer<WeftClusterPolicyObject>;
  private readonly nodes: Informer<NodeObject>;
  private readonly runner: Runner;
  private applied: NftTable | undefined;
  /** The generation `applied` was compiled with (the next sync may already have moved on). */
  private appliedGeneration = 0;
  private appliedVersions: number[] = [];
  private lastFull = 0;
  /**
   * Random at a first start; a restarted agent adopts the generation of the table it finds in
   * force (see adopt), so a restart rewrites nothing and re-judges no connection.
   */
  private generation = randomInt(1, 0x10000);
  /** VERSION_SET of the table in force: the versions since its generation, the last its own. */
  private versions: number[] = [1];
  /** What the last compile leaves for the next: sets over unchanged namespaces are reused. */
  private readonly compileCache = new CompileCache();
  private saveScheduled = false;
  private ready = false;
  private resolveReady: () => void = () => undefined;
  /** Every cache filled and the table in force adopted: syncs may write from here on. */
  private readonly readyNow = new Promise<void>((r) => {
    this.resolveReady = r;
  });
  private enforced = new Set<string>();
  private state: PolicyStatus = { syncs: 0, problems: [] };
  private lastSnapshot: Snapshot | undefined;
  /** Pods fetched at ADD before their informer event arrived. */
  private readonly early = new Map<string, PodObject>();

  private readonly nft: NftRunner;

  constructor(private readonly cfg: PolicyControllerConfig) {
    const { informers, log } = cfg;
    this.nft = cfg.nft ?? nftProcessRunner;
    this.namespaces = informers.of('Namespace');
    this.pods = informers.of('Pod');
    this.endpoints = informers.of('WeftEndpoint');
    this.policies = informers.of('NetworkPolicy');
    this.clusterPolicies = informers.of('WeftClusterPolicy');
    this.nodes = informers.of('Node');
    this.runner = new Runner(() => this.timedSync(), { name: 'policy', minIntervalMs: 0, resyncMs: 30_000, log });
  }

  private get informers(): Array<Informer<NamespaceObject | PodObject | WeftEndpointObject | NetworkPolicyObject | WeftClusterPolicyObject | NodeObject>> {
    return [this.namespaces, this.pods, this.endpoints, this.policies, this.clusterPolicies, this.nodes] as Array<Informer<NamespaceObject | PodObject | WeftEndpointObject | NetworkPolicyObject | WeftClusterPolicyObject | NodeObject>>;
  }

  private get synced(): Promise<unknown> {
    return Promise.all(this.informers.map((i) => i.synced));
  }

  start(): void {
    for (const i of this.informers) this.unsubscribe.push(i.onChange(() => this.runner.trigger()));
    void Promise.all([this.synced, this.adopt()]).then(() => {
      this.ready = true;
      this.resolveReady();
      if (!this.stopped) this.runner.start();
    });
  }

  /**
   * An agent restarted on a node whose table is still in force takes it as applied: the first
   * sync then writes only what changed while it was away — usually nothing. Anything unusual
   * (no file, no table, a file that does not parse) means a full write, as on a first start.
   */
  private async adopt(): Promise<void> {
    const dir = this.cfg.stateDir;
    if (!dir) return;
    try {
      const saved = JSON.parse(readFileSync(join(dir, APPLIED_TABLE_FILE), 'utf8')) as { generation?: unknown; versions?: unknown; table?: NftTable };
      const gen = saved.generation;
      const versions = saved.versions;
      const t = saved.table;
      if (typeof gen !== 'number' || !Number.isInteger(gen) || gen < 1 || gen > 0xffff || t?.name !== POLICY_TABLE || !Array.isArray(t.sets) || !Array.isArray(t.chains)) return;
      if (!Array.isArray(versions) || versions.length === 0 || !versions.every((v) => typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 0x7fffffff)) return;
      const version = versions[versions.length - 1] as number;
      // What a diff would be computed from must be a table Weft could have written…
      assertTable(t);
      // …and the one in force: every change applied adds a higher version, so the generation
      // and the highest version in the kernel say whether the file is current (an agent killed
      // between apply and save, a table changed behind its back). If not, the first sync
      // writes the whole table.
      const chain = await nftListChain('inet', POLICY_TABLE, allowChain('ingress'));
      const set = await nftListSet('inet', POLICY_TABLE, VERSION_SET);
      const inForce = { generation: chain ? generationInForce(chain) : undefined, version: set ? versionInForce(set) : undefined };
      if (inForce.generation !== gen || inForce.version !== version) {
        this.cfg.log.info('the policy table in force is not the one last saved; writing it whole', { saved: { generation: gen, version }, inForce });
        return;
      }
      this.applied = t;
      this.appliedGeneration = gen;
      this.generation = gen;
      this.appliedVersions = versions as number[];
      this.versions = versions as number[];
      this.lastFull = Date.now();
      this.cfg.log.info('adopted the policy table in force', { generation: gen });
    } catch {
      /* nothing to adopt */
    }
  }

  /** Kept after the sync that applied it (never on the ADD path): the latest table only. */
  private saveApplied(): void {
    const dir = this.cfg.stateDir;
    if (!dir || this.saveScheduled) return;
    this.saveScheduled = true;
    setImmediate(() => {
      this.saveScheduled = false;
      if (!this.applied) return;
      try {
        writeFileAtomic(join(dir, APPLIED_TABLE_FILE), JSON.stringify({ generation: this.appliedGeneration, versions: this.appliedVersions, table: this.applied }));
      } catch (err) {
        this.cfg.log.warn('could not keep the applied policy table; a restart will rewrite it', { error: (err as Error).message });
      }
    });
  }

  /** Local records changed (DEL, GC): recompile. */
  attachmentsChanged(): void {
    // After an ADD, admit() already synced with the new pod: nothing left to do.
    const ready = this.cfg.records.list().filter((r) => r.state === 'ready' && r.addresses.length > 0);
    if (ready.length === this.enforced.size && ready.every((r) => this.enforced.has(r.hostIf))) return;
    this.runner.trigger();
  }

  /**
   * Resolves once the table enforces this attachment's policy; throws if that cannot be done
   * (the ADD then fails, and the runtime retries it).
   */
  async admit(rec: AttachmentRecord): Promise<void> {
    const deadline = Date.now() + ADMIT_TIMEOUT_MS;
    const late = (what: string): Error => new Error(`policy for ${rec.pod?.namespace ?? '?'}/${rec.pod?.name ?? rec.containerId} is not in force: ${what}`);
    await Promise.race([this.readyNow, new Promise((_, reject) => setTimeout(() => reject(late('the datastore has not been read yet')), ADMIT_TIMEOUT_MS))]);
    const { namespace, name, uid } = rec.pod ?? {};
    if (namespace && name) await this.awaitPod(namespace, name, uid, deadline, late);
    for (;;) {
      await this.runner.flush(Math.max(deadline - Date.now(), 1));
      if (this.enforced.has(rec.hostIf)) return;
      if (Date.now() > deadline) throw late(this.state.error ?? 'no sync has included it');
    }
  }

  /**
   * The kubelet writes the Pod before it asks for the sandbox's network, but the informer may
   * not have seen it yet (or still holds an older Pod of the same name): fetched directly, and
   * where Pods are required, polled for a while.
   */
  private async awaitPod(namespace: string, name: string, uid: string | undefined, deadline: number, late: (what: string) => Error): Promise<void> {
    const isIt = (p: PodObject | undefined): p is PodObject => p !== undefined && (uid === undefined || p.metadata.uid === undefined || p.metadata.uid === uid);
    if (isIt(this.pods.get(name, namespace))) return;
    const waitMs = this.cfg.podWaitMs;
    const until = Math.min(deadline, Date.now() + (waitMs ?? 0));
    let lastError: string | undefined;
    for (let pause = 50; ; pause = Math.min(pause * 2, 1000)) {
      // Not found, unreachable or unusable: the informer's view stands.
      lastError = undefined;
      const pod = await this.cfg.store.get<PodObject>('Pod', name, namespace).catch((err: unknown) => {
        lastError = (err as Error).message;
        return undefined;
      });
      if (isIt(pod)) {
        this.early.set(`${namespace}/${name}`, pod);
        return;
      }
      if (isIt(this.pods.get(name, namespace))) return;
      if (waitMs === undefined) return;
      const left = until - Date.now();
      if (left <= 0) break;
      await new Promise((r) => setTimeout(r, Math.min(pause, left)));
    }
    const which = `Pod ${namespace}/${name}${uid ? ` (uid ${uid})` : ''}`;
    throw late(
      lastError
        ? `could not read ${which}: ${lastError}`
        : `the API server has no ${which} after ${waitMs / 1000} s; its labels, and so its policy, are unknown (the kubelet creates the Pod before the ADD: check that CNI_ARGS K8S_POD_NAMESPACE/K8S_POD_NAME name it and that this agent reads the cluster the kubelet writes to)`,
    );
  }

  status(): PolicyStatus {
    return { ...this.state, problems: [...this.state.problems] };
  }

  /** The table last applied: its generation and highest version (what the kernel should show). */
  inForce(): { generation: number; version: number } | undefined {
    const version = this.appliedVersions[this.appliedVersions.length - 1];
    return this.applied && version !== undefined ? { generation: this.appliedGeneration, version } : undefined;
  }

  private localView(): { endpoints: LocalEndpoint[]; attachments: LocalAttachment[] } {
    const ready = this.cfg.records.list().filter((r) => r.state === 'ready' && r.addresses.length > 0);
    const endpoints: LocalEndpoint[] = [];
    const attachments: LocalAttachment[] = [];
    for (const r of ready) {
      const addresses = r.addresses.map(addressOf);
      const ns = r.pod?.namespace;
      const name = r.pod?.name;
      if (ns && name) endpoints.push({ namespace: ns, name, addresses, ...(r.pod?.labels ? { labels: r.pod.labels } : {}) });
      attachments.push({ hostIf: r.hostIf, addresses, ...(ns && name ? { endpoint: `${ns}/${name}` } : {}) });
    }
    return { endpoints, attachments };
  }

  private async timedSync(): Promise<void> {
    const t0 = performance.now();
    try {
      const wrote = await this.sync();
      if (wrote) this.cfg.onSync?.(true, (performance.now() - t0) / 1000);
    } catch (err) {
      this.cfg.onSync?.(false, (performance.now() - t0) / 1000);
      throw err;
    }
  }

  /** One sync; false when it could not run yet (caches not filled). */
  private async sync(): Promise<boolean> {
    // Nothing before every cache is filled and a table in force is adopted: an empty cache
    // means "no policies", and writing that would open every pod.
    if (!this.ready) return false;
    const started = Date.now();
    const t0 = performance.now();
    const local = this.localView();
    const pods = this.pods.items();
    for (const [key, p] of this.early) {
      // A Pod fetched at ADD stands until the informer has it — and only while a local
      // attachment is that pod's (its uid where the runtime gave one): a fetched Pod whose
      // attachment is gone, or that the informer has since replaced, is forgotten.
      const seen = this.pods.get(p.metadata.name, p.metadata.namespace);
      const attached = this.cfg.records.list().some((r) => r.pod?.namespace === p.metadata.namespace && r.pod?.name === p.metadata.name && (r.pod?.uid === undefined || r.pod.uid === p.metadata.uid));
      if (!attached || (seen && (seen.metadata.uid === p.metadata.uid || p.metadata.uid === undefined))) {
        this.early.delete(key);
        continue;
      }
      if (seen) pods.splice(pods.indexOf(seen), 1);
      pods.push(p);
    }
    const { snapshot, problems } = buildSnapshot({
      namespaces: this.namespaces.items(),
      pods,
      weftEndpoints: this.endpoints.items(),
      policies: this.policies.items(),
      clusterPolicies: this.clusterPolicies.items(),
      nodes: this.nodes.items(),
      local: { node: this.cfg.nodeName, endpoints: local.endpoints },
    });
    const t1 = performance.now();
    let table = compilePolicy({ snapshot, localBlocks: this.cfg.localBlocks, attachments: local.attachments, generation: this.generation, versions: this.versions, cache: this.compileCache, flows: this.cfg.flows === true });
    const full = !this.applied || Date.now() - this.lastFull >= FULL_EVERY_MS;
    let changes = full ? undefined : diffScript(this.applied as NftTable, table);
    if (changes === undefined || changes.length > 0) {
      // Every change is a new version; one that may deny what was allowed is also a new
      // generation: every open connection's next packet is judged anew.
      const next = nextVersion(this.versions[this.versions.length - 1] ?? 0);
      if (changes === undefined || needsNewGeneration(changes, snapshot)) {
        this.generation = nextGeneration(this.generation);
        table = withGeneration(table, this.cfg.localBlocks, this.generation);
        this.versions = [next];
      } else {
        this.versions = [...this.versions, next];
      }
      table = withVersions(table, this.versions);
      changes = full ? undefined : diffScript(this.applied as NftTable, table);
    }
    const t2 = performance.now();
    try {
      if (changes === undefined) await this.replace(table);
      else if (changes.length > 0) await this.nft.apply(changes.join('\n') + '\n');
    } catch (err) {
      if (!(err instanceof NftError) || changes === undefined) {
        this.state = { ...this.state, error: (err as Error).message };
        throw err;
      }
      // The kernel is not what we last wrote (someone changed it): replace the whole table.
      this.cfg.log.warn('policy table drifted; replacing it', { error: err.message });
      await this.replace(table);
    }
    this.applied = table;
    // What flow records name ends by: the snapshot of the table now in force.
    this.lastSnapshot = snapshot;
    this.appliedGeneration = this.generation;
    this.appliedVersions = this.versions;
    if (changes === undefined || changes.length > 0) this.saveApplied();
    this.enforced = new Set(local.attachments.map((a) => a.hostIf));
    const t3 = performance.now();
    const fingerprint = snapshotFingerprint(snapshot);
    this.cfg.log.debug('policy synced', {
      changes: changes === undefined ? 'whole table' : changes.length,
      ms: { snapshot: roundMs(t1 - t0), compile: roundMs(t2 - t1), nft: roundMs(t3 - t2), fingerprint: roundMs(performance.now() - t3) },
    });
    if (JSON.stringify(problems) !== JSON.stringify(this.state.problems)) for (const p of problems) this.cfg.log.error(p);
    this.state = { fingerprint, syncs: this.state.syncs + 1, size: tableSize(table), lastSyncMs: Date.now() - started, problems };
    return true;
  }

  private async replace(table: NftTable): Promise<void> {
    await this.nft.apply(fullScript(table));
    this.lastFull = Date.now();
  }

  /** The snapshot of the last sync: what the table in force was compiled from. */
  get snapshot(): Snapshot | undefined {
    return this.lastSnapshot;
  }

  flush(): Promise<void> {
    return this.runner.flush();
  }

  /** Stops the loop; leaving, removes the table. */
  async stop(leaving: boolean): Promise<void> {
    this.stopped = true;
    await this.runner.stop();
    for (const u of this.unsubscribe) u();
    if (leaving) await nftDeleteTable('inet', POLICY_TABLE).catch(() => undefined);
  }
}
