/**
 * The behaviour every BatchRunner must have, on the real kernel. `exerciseBatchRunner` runs in a
 * process inside a throwaway node netns (a runner acts on its own netns) with the batches of a
 * real attachment (the caller makes them with src/datapath/plan.ts from CONTRACT_ATTACHMENT) and
 * reports what the kernel then holds and how failures were reported; `assertBatchRunnerContract`
 * checks one report, and the test compares the two runners' reports for equality
 * (test/batch-runner.test.ts).
 */
import assert from 'node:assert/strict';
import type { BatchRunner } from './batch-runner.js';
import { ip, IpError, type IpCommand } from './ip.js';
import { openNetns, type OpenNetns } from './netns.js';

export interface RunnerReport {
  runner: string;
  /** After the node-side and pod-side batches of a dual-stack attachment. */
  attached: { node: unknown[]; pod: unknown[] };
  /** After deleting the node end. */
  detached: { node: unknown[]; pod: unknown[] };
  errors: Record<string, { reason: string; line: number | undefined } | 'no error'>;
  /** The line after a failing one was not run. */
  stoppedAtFailure: boolean;
  /** A line one runner may not know itself (`link set … mtu`) still took effect. */
  otherLineApplied: boolean;
}

/** The attachment the batches make: a dual-stack pod, as plan.ts plans one. */
export const CONTRACT_ATTACHMENT = {
  hostIf: 'weftcontract01',
  ifName: 'eth0',
  mtu: 1450,
  hostMac: '02:aa:00:00:00:01',
  podMac: '02:aa:00:00:00:02',
  addresses: [
    { family: 4 as const, address: '10.77.0.5', prefix: 32 },
    { family: 6 as const, address: 'fd00:77::5', prefix: 128 },
  ],
};
const HOST = CONTRACT_ATTACHMENT.hostIf;

/** The node-side batch (naming the pod's netns as passedFdPath(0)) and the pod-side batch. */
export interface AttachmentBatches {
  host: IpCommand[];
  pod: IpCommand[];
}

/** What the kernel holds in a netns, without what differs between runs (indexes, timers). */
async function state(netns?: OpenNetns): Promise<unknown[]> {
  const o = netns ? { netns } : {};
  const links = JSON.parse(await ip(['-json', '-details', 'link', 'show'], o)) as Array<Record<string, unknown>>;
  const addrs = JSON.parse(await ip(['-json', 'addr', 'show'], o)) as Array<{ ifname: string; addr_info: Array<Record<string, unknown>> }>;
  const routes = [...(JSON.parse(await ip(['-json', 'route', 'show'], o)) as unknown[]), ...(JSON.parse(await ip(['-json', '-6', 'route', 'show'], o)) as unknown[])];
  return [
    ...links.map((l) => ({
      link: l['ifname'],
      mtu: l['mtu'],
      mac: l['address'],
      up: ((l['flags'] as string[] | undefined) ?? []).includes('UP'),
      flags: [...((l['flags'] as string[] | undefined) ?? [])].filter((f) => f !== 'LOWER_UP' && f !== 'NO-CARRIER').sort(),
      kind: (l['linkinfo'] as { info_kind?: string } | undefined)?.info_kind ?? null,
      qdisc: l['qdisc'] ?? null,
      txqlen: l['txqlen'] ?? null,
    })),
    // every field of an address but its lifetimes
    ...addrs.flatMap((a) =>
      a.addr_info.map((i) => {
        const { valid_life_time: _v, preferred_life_time: _p, ...rest } = i;
        return { addr: `${String(i['local'])}/${String(i['prefixlen'])}`, dev: a.ifname, nodad: i['nodad'] === true, ...rest };
      }),
    ),
    // every field of a route, with flags in order
    ...(routes as Array<Record<string, unknown>>).map((r) => ({
      route: r['dst'],
      via: r['gateway'] ?? null,
      ...r,
      flags: [...((r['flags'] as string[] | undefined) ?? [])].sort(),
    })),
  ];
}

async function failure(fn: () => Promise<unknown>): Promise<{ reason: string; line: number | undefined } | 'no error'> {
  try {
    await fn();
    return 'no error';
  } catch (err) {
    if (!(err instanceof IpError)) throw err;
    return { reason: err.reason, line: err.line };
  }
}

/** Runs the scenarios with `runner`, in this process's netns (a throwaway node netns). */
export async function exerciseBatchRunner(runner: BatchRunner, podNetnsPath: string, batches: AttachmentBatches): Promise<RunnerReport> {
  const pod = await openNetns(podNetnsPath);
  try {
    await runner.run(batches.host, { passed: pod.fd });
    await runner.run(batches.pod, { netns: pod });
    const attached = { node: await state(), pod: await state(pod) };
    const errors: RunnerReport['errors'] = {
      'the same veth again': await failure(() => runner.run(batches.host, { passed: pod.fd })),
      'an address twice, second line': await failure(() => runner.run([['link', 'set', 'dev', 'eth0', 'up'], ['addr', 'add', '10.77.0.5/32', 'dev', 'eth0']], { netns: pod })),
      'an address on a missing device': await failure(() => runner.run([['addr', 'add', '10.77.0.9/32', 'dev', 'nosuchdev0']])),
      'a route via a missing device': await failure(() => runner.run([['route', 'add', '10.77.0.9/32', 'dev', 'nosuchdev0']])),
    };
    // A batch stops at its first failing line: the address after it is not added.
    const stop = await failure(() => runner.run([['addr', 'add', '10.77.0.9/32', 'dev', 'nosuchdev0'], ['addr', 'add', '10.77.0.10/32', 'dev', HOST, 'scope', 'host']]));
    errors['a failing first line'] = stop;
    const stoppedAtFailure = !(await ip(['-json', 'addr', 'show', 'dev', HOST])).includes('10.77.0.10');
    await runner.run([['link', 'set', 'dev', HOST, 'mtu', '1400']]);
    const otherLineApplied = (await ip(['-json', 'link', 'show', 'dev', HOST])).includes('"mtu":1400');
    await runner.run([['link', 'del', 'dev', HOST]]);
    const detached = { node: await state(), pod: await state(pod) };
    errors['deleting a missing link'] = await failure(() => runner.run([['link', 'del', 'dev', HOST]]));
    return { runner: runner.name, attached, detached, errors, stoppedAtFailure, otherLineApplied };
  } finally {
    await pod.close();
    await runner.close();
  }
}

/** What every runner's report must say, whatever the implementation. */
export function assertBatchRunnerContract(r: RunnerReport): void {
  const has = (list: unknown[], item: Record<string, unknown>): boolean => list.some((x) => Object.entries(item).every(([k, v]) => JSON.stringify((x as Record<string, unknown>)[k]) === JSON.stringify(v)));
  assert.ok(has(r.attached.node, { link: HOST, mtu: 1450, mac: '02:aa:00:00:00:01', up: true, kind: 'veth' }), `${r.runner}: node end`);
  assert.ok(has(r.attached.pod, { link: 'eth0', mtu: 1450, mac: '02:aa:00:00:00:02', up: true, kind: 'veth' }), `${r.runner}: pod end`);
  assert.ok(has(r.attached.node, { addr: '169.254.1.1/32', dev: HOST, scope: 'host' }), `${r.runner}: gateway v4`);
  assert.ok(has(r.attached.node, { addr: 'fe80::1/64', dev: HOST, nodad: true }), `${r.runner}: gateway v6`);
  assert.ok(has(r.attached.node, { route: '10.77.0.5', dev: HOST, scope: 'link' }), `${r.runner}: host route v4`);
  assert.ok(has(r.attached.node, { route: 'fd00:77::5', dev: HOST }), `${r.runner}: host route v6`);
  assert.ok(has(r.attached.pod, { addr: 'fd00:77::5/128', dev: 'eth0', nodad: true }), `${r.runner}: pod v6 address`);
  assert.ok(has(r.attached.pod, { route: 'default', via: '169.254.1.1', dev: 'eth0', flags: ['onlink'] }), `${r.runner}: pod default v4`);
  assert.ok(has(r.attached.pod, { route: 'default', via: 'fe80::1', dev: 'eth0' }), `${r.runner}: pod default v6`);
  assert.deepEqual(r.errors, {
    'the same veth again': { reason: 'exists', line: 0 },
    'an address twice, second line': { reason: 'exists', line: 1 },
    'an address on a missing device': { reason: 'not-found', line: 0 },
    'a route via a missing device': { reason: 'not-found', line: 0 },
    'a failing first line': { reason: 'not-found', line: 0 },
    'deleting a missing link': { reason: 'not-found', line: 0 },
  }, r.runner);
  assert.ok(r.stoppedAtFailure, `${r.runner}: the line after a failing one ran`);
  assert.ok(r.otherLineApplied, `${r.runner}: a line outside the plan's subset was not applied`);
  assert.ok(!has(r.detached.node, { link: HOST }) && !has(r.detached.pod, { link: 'eth0' }), `${r.runner}: the pair is gone`);
}
