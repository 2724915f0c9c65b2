/**
 * The agent's Prometheus metrics (prom-client): one registry whose gauges read the agent's
 * state when scraped (pods, IPAM, policy table size, peers, datastore, flow ring) and whose
 * counters and histograms the agent feeds as things happen (CNI requests, policy syncs, flow
 * records). Labels are bounded: verbs, results, reasons, directions, pools — never a pod, an
 * address or a port. Policy drops come from the kernel's own counters of the drop chains (at
 * most one reading a second, kept monotonic across table rewrites: KernelCounters), so they
 * count every drop (flow records are rate-limited; these are not).
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { nftListChain } from '../kernel/nft.js';
import { chainCounterSum, DROP_REASONS as TABLE_DROP_REASONS, dropChain, POLICY_TABLE, UNRECORDED_CHAINS } from '../policy/compile.js';
import type { FlowsStatus, HealthReply, PolicyStatus } from './api.js';

export interface MetricsSources {
  node: string;
  version: string;
  health: () => HealthReply;
  /** Informer watch restarts so far (cluster mode). */
  watchRestarts?: () => number;
  /** Whether the policy table's drop chains exist here (policy enforced on this node). */
  policy: boolean;
  /** Flow records made so far, by "verdict reason" (FlowsController.made). */
  flowRecords?: () => ReadonlyMap<string, number>;
}

const TABLE_REASON_LABEL = { isolated: 'policy-isolated', denied: 'policy-denied', unknown: 'unknown-address' } as const;

/**
 * The policy table's kernel counters, read for metrics: one reading at a time shared by
 * concurrent scrapes and kept for a second (a scrape flood starts no more `nft` processes), and
 * made monotonic — a whole-table rewrite (every 5 minutes, or after drift) starts the kernel's
 * counters at zero, so a reading below the last adds the last to a base kept here.
 */
class KernelCounters {
  private reading: Promise<Map<string, number>> | undefined;
  private at = 0;
  private readonly last = new Map<string, number>();
  private readonly base = new Map<string, number>();

  constructor(private readonly chains: readonly string[]) {}

  read(): Promise<Map<string, number>> {
    if (this.reading && Date.now() - this.at < 1000) return this.reading;
    this.at = Date.now();
    this.reading = (async () => {
      const out = new Map<string, number>();
      await Promise.all(
        this.chains.map(async (c) => {
          const json = await nftListChain('inet', POLICY_TABLE, c).catch(() => undefined);
          const now = json ? chainCounterSum(json) : 0;
          const last = this.last.get(c) ?? 0;
          if (now < last) this.base.set(c, (this.base.get(c) ?? 0) + last);
          this.last.set(c, now);
          out.set(c, (this.base.get(c) ?? 0) + now);
        }),
      );
      return out;
    })();
    return this.reading;
  }
}

export class AgentMetrics {
  readonly registry = new Registry();
  private readonly cniRequests: Histogram<'command' | 'result'>;
  private readonly policySyncs: Histogram<'result'>;

  constructor(src: MetricsSources) {
    const r = this.registry;
    collectDefaultMetrics({ register: r });
    new Gauge({ name: 'weft_build_info', help: 'The agent build: always 1, labelled with version and node', labelNames: ['version', 'node'], registers: [r] }).set({ version: src.version, node: src.node }, 1);
    // One health() per scrape feeds every state gauge below.
    let h: HealthReply | undefined;
    const health = (): HealthReply => (h ??= src.health());
    new Gauge({
      name: 'weft_pods_attached',
      help: 'Pod interfaces this node has attached',
      registers: [r],
      collect() {
        h = undefined; // the first gauge of a scrape reads afresh
        this.set(health().attachments);
      },
    });
    new Gauge({
      name: 'weft_ipam_addresses_used',
      help: 'Pod addresses allocated, per pool of this node',
      labelNames: ['pool'],
      registers: [r],
      collect() {
        this.reset();
        for (const p of health().pools) this.set({ pool: p.cidr }, p.used);
      },
    });
    new Gauge({
      name: 'weft_ipam_addresses_total',
      help: 'Pod addresses a pool of this node can give (its size less network, gateway and broadcast)',
      labelNames: ['pool'],
      registers: [r],
      collect() {
        this.reset();
        for (const p of health().pools) this.set({ pool: p.cidr }, Number(p.size));
      },
    });
    this.cniRequests = new Histogram({
      name: 'weft_cni_request_duration_seconds',
      help: 'CNI requests the agent served, by verb and result, and how long each took',
      labelNames: ['command', 'result'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
      registers: [r],
    });
    this.policySyncs = new Histogram({
      name: 'weft_policy_sync_duration_seconds',
      help: 'Policy syncs (compile and apply the node\'s nftables table), by result',
      labelNames: ['result'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [r],
    });
    const policy = (): PolicyStatus | undefined => health().policy;
    new Gauge({ name: 'weft_policy_rules', help: 'Rules in the policy table in force', registers: [r], collect() { this.set(policy()?.size?.rules ?? 0); } });
    new Gauge({ name: 'weft_policy_set_elements', help: 'Set and map elements in the policy table in force', registers: [r], collect() { this.set(policy()?.size?.elements ?? 0); } });
    new Gauge({ name: 'weft_policy_problems', help: 'Policy objects ignored because they are invalid', registers: [r], collect() { this.set(policy()?.problems.length ?? 0); } });
    const dropChains = TABLE_DROP_REASONS.flatMap((reason) => (['ingress', 'egress'] as const).map((d) => ({ chain: dropChain(reason, d), labels: { reason: TABLE_REASON_LABEL[reason], direction: d } })));
    const kernel = new KernelCounters([...dropChains.map((c) => c.chain), ...UNRECORDED_CHAINS]);
    if (src.policy) {
      new Counter({
        name: 'weft_policy_drops_total',
        help: 'Packets the policy table dropped, by reason and direction (the kernel\'s counters)',
        labelNames: ['reason', 'direction'],
        registers: [r],
        async collect() {
          const counts = await kernel.read();
          // Reset and set in one synchronous step: a concurrent scrape never adds twice.
          this.reset();
          for (const c of dropChains) this.inc(c.labels, counts.get(c.chain) ?? 0);
        },
      });
    }
    new Gauge({ name: 'weft_peers', help: 'Nodes this node routes pod traffic to', registers: [r], collect() { this.set(health().cluster?.peers.length ?? 0); } });
    new Gauge({ name: 'weft_pod_blocks', help: 'Pod address blocks this node holds', registers: [r], collect() { this.set(health().cluster?.blocks.length ?? 0); } });
    new Gauge({ name: 'weft_silent_agents', help: 'Peers whose agent is not renewing its lease', registers: [r], collect() { this.set(health().cluster?.silentAgents.length ?? 0); } });
    new Gauge({ name: 'weft_datastore_connected', help: '1 while every watch on the datastore is connected', registers: [r], collect() { this.set(health().cluster?.datastoreConnected ? 1 : 0); } });
    if (src.watchRestarts) {
      const restarts = src.watchRestarts;
      new Counter({ name: 'weft_datastore_watch_restarts_total', help: 'Times a watch on the datastore started over (compacted, or the datastore lost)', registers: [r], collect() { this.reset(); this.inc(restarts()); } });
    }
    const flows = (): FlowsStatus | undefined => health().flows;
    if (src.policy) {
      new Counter({
        name: 'weft_flows_unrecorded_total',
        help: 'New connections of local pods not recorded: past the per-second record limit (the kernel\'s counters)',
        registers: [r],
        async collect() {
          const counts = flows() ? await kernel.read() : new Map<string, number>();
          this.reset();
          this.inc(UNRECORDED_CHAINS.reduce((n, c) => n + (counts.get(c) ?? 0), 0));
        },
      });
    }
    const made = src.flowRecords;
    new Counter({
      name: 'weft_flow_records_total',
      help: 'Flow records made, by verdict and drop reason',
      labelNames: ['verdict', 'reason'],
      registers: [r],
      collect() {
        this.reset();
        for (const [key, n] of made?.() ?? []) {
          const [verdict = '', reason = ''] = key.split(' ');
          this.inc({ verdict, reason }, n);
        }
      },
    });
    new Gauge({ name: 'weft_flow_buffer_records', help: 'Flow records the node holds now (its ring)', registers: [r], collect() { this.set(flows()?.records ?? 0); } });
    new Gauge({ name: 'weft_flow_buffer_capacity', help: 'Flow records the node keeps at most', registers: [r], collect() { this.set(flows()?.capacity ?? 0); } });
    new Counter({
      name: 'weft_flows_lost_total',
      help: 'Flow records lost: overwritten in the ring before being read (ring), or dropped by the kernel while the reader was behind (kernel)',
      labelNames: ['source'],
      registers: [r],
      collect() {
        this.reset();
        const f = flows();
        if (!f) return;
        this.inc({ source: 'ring' }, f.overwritten);
        this.inc({ source: 'kernel' }, f.kernelLost);
      },
    });
  }

  cniRequest(command: string, ok: boolean, seconds: number): void {
    this.cniRequests.observe({ command, result: ok ? 'success' : 'error' }, seconds);
  }

  policySync(ok: boolean, seconds: number): void {
    this.policySyncs.observe({ result: ok ? 'success' : 'error' }, seconds);
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
