import { randomInt } from 'node:crypto';
import { addressOf } from '../cni/result.js';
import { diffScript, fullScript, tableSize, type NftTable } from '../nftables/ruleset.js';
import { Informer } from '../datastore/informer.js';
import type { Store } from '../datastore/store.js';
import { nftApply, nftDeleteTable, NftError } from '../kernel/nft.js';
import type { NamespaceObject, NetworkPolicyObject, NodeObject, PodObject, WeftClusterPolicyObject, WeftEndpointObject } from '../model/objects.js';
import { compilePolicy, POLICY_TABLE, type LocalAttachment } from '../policy/compile.js';
import { buildSnapshot, snapshotFingerprint, type LocalEndpoint } from '../policy/from-objects.js';
import type { Logger } from '../util/log.js';
import { Runner } from '../util/runner.js';
import type { PolicyStatus } from './api.js';
import type { AttachmentRecord, AttachmentStore } from './attachment-store.js';

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
  nodeName: string;
  /** This node's pod ranges. */
  localBlocks: string[];
  records: AttachmentStore;
  log: Logger;
}

const ADMIT_TIMEOUT_MS = 10_000;
/** A whole-table rewrite now and then repairs changes made behind the agent's back. */
const FULL_EVERY_MS = 5 * 60_000;

/** 1-65535, wrapping; never 0 (a new connection's mark). */
const nextGeneration = (g: number): number => (g % 0xffff) + 1;

export class PolicyController {
  private readonly abort = new AbortController();
  private readonly namespaces: Informer<NamespaceObject>;
  private readonly pods: Informer<PodObject>;
  private readonly endpoints: Informer<WeftEndpointObject>;
  private readonly policies: Informer<NetworkPolicyObject>;
  private readonly clusterPolicies: Informer<WeftClusterPolicyObject>;
  private readonly nodes: Informer<NodeObject>;
  private readonly runner: Runner;
  private applied: NftTable | undefined;
  private lastFull = 0;
  /** Random at start: connections marked by a previous agent's table are judged again. */
  private generation = randomInt(1, 0x10000);
  private enforced = new Set<string>();
  private state: PolicyStatus = { syncs: 0, problems: [] };
  /** Pods fetched at ADD before their informer event arrived. */
  private readonly early = new Map<string, PodObject>();

  constructor(private readonly cfg: PolicyControllerConfig) {
    const { store, log } = cfg;
    this.namespaces = new Informer(store, 'Namespace', log);
    this.pods = new Informer(store, 'Pod', log);
    this.endpoints = new Informer(store, 'WeftEndpoint', log);
    this.policies = new Informer(store, 'NetworkPolicy', log);
    this.clusterPolicies = new Informer(store, 'WeftClusterPolicy', log);
    this.nodes = new Informer(store, 'Node', log);
    this.runner = new Runner(() => this.sync(), { name: 'policy', minIntervalMs: 0, resyncMs: 30_000, log });
  }

  private get informers(): Array<Informer<NamespaceObject | PodObject | WeftEndpointObject | NetworkPolicyObject | WeftClusterPolicyObject | NodeObject>> {
    return [this.namespaces, this.pods, this.endpoints, this.policies, this.clusterPolicies, this.nodes] as Array<Informer<NamespaceObject | PodObject | WeftEndpointObject | NetworkPolicyObject | WeftClusterPolicyObject | NodeObject>>;
  }

  private get synced(): Promise<unknown> {
    return Promise.all(this.informers.map((i) => i.synced));
  }

  start(): void {
    for (const i of this.informers) {
      void i.run(this.abort.signal);
      i.onChange(() => this.runner.trigger());
    }
    void this.synced.then(() => {
      if (!this.abort.signal.aborted) this.runner.start();
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
    await Promise.race([this.synced, new Promise((_, reject) => setTimeout(() => reject(late('the datastore has not been read yet')), ADMIT_TIMEOUT_MS))]);
    // The runtime usually writes the Pod before ADD; the informer may not have seen it yet.
    const { namespace, name } = rec.pod ?? {};
    if (namespace && name && !this.pods.get(name, namespace)) {
      const pod = await this.cfg.store.get<PodObject>('Pod', name, namespace).catch(() => undefined);
      if (pod) this.early.set(`${namespace}/${name}`, pod);
    }
    for (;;) {
      await this.runner.flush(Math.max(deadline - Date.now(), 1));
      if (this.enforced.has(rec.hostIf)) return;
      if (Date.now() > deadline) throw late(this.state.error ?? 'no sync has included it');
    }
  }

  status(): PolicyStatus {
    return { ...this.state, problems: [...this.state.problems] };
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

  private async sync(): Promise<void> {
    const started = Date.now();
    const local = this.localView();
    const pods = this.pods.items();
    for (const [key, p] of this.early) {
      if (this.pods.get(p.metadata.name, p.metadata.namespace)) this.early.delete(key);
      else pods.push(p);
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
    const compile = (generation: number): NftTable => compilePolicy({ snapshot, localBlocks: this.cfg.localBlocks, attachments: local.attachments, generation });
    let table = compile(this.generation);
    const full = !this.applied || Date.now() - this.lastFull >= FULL_EVERY_MS;
    let changes = full ? undefined : diffScript(this.applied as NftTable, table);
    // Any change is a new generation: every open connection's next packet is judged anew.
    if (changes === undefined || changes.length > 0) {
      this.generation = nextGeneration(this.generation);
      table = compile(this.generation);
      changes = full ? undefined : diffScript(this.applied as NftTable, table);
    }
    try {
      if (changes === undefined) await this.replace(table);
      else if (changes.length > 0) await nftApply(changes.join('\n') + '\n');
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
    this.enforced = new Set(local.attachments.map((a) => a.hostIf));
    const fingerprint = snapshotFingerprint(snapshot);
    if (JSON.stringify(problems) !== JSON.stringify(this.state.problems)) for (const p of problems) this.cfg.log.error(p);
    this.state = { fingerprint, syncs: this.state.syncs + 1, size: tableSize(table), lastSyncMs: Date.now() - started, problems };
  }

  private async replace(table: NftTable): Promise<void> {
    await nftApply(fullScript(table));
    this.lastFull = Date.now();
  }

  /** Stops watching; with `teardown`, removes the table (the node leaves). */
  async stop(teardown: boolean): Promise<void> {
    this.abort.abort();
    this.runner.stop();
    if (teardown) await nftDeleteTable('inet', POLICY_TABLE).catch(() => undefined);
  }
}
