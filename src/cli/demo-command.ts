import type { Command } from 'commander';
import { fileURLToPath } from 'node:url';
import { convertResult, parseResult } from '../cni/convert.js';
import { addressOf } from '../cni/result.js';
import { run } from '../kernel/exec.js';
import {
  createPodNetns,
  podConf,
  randomPrefix,
  sandboxNetwork,
  sandboxRuntime,
  startSandbox,
  stopSandbox,
  type Sandbox,
} from '../lab/sandbox.js';
import { UserError } from '../util/user-error.js';

/**
 * `weft demo`: one node, two pods, in network namespaces of their own (the machine's root netns
 * is never touched). Shows the CNI result of each pod, the pods reaching each other over IPv4 and
 * IPv6, CHECK and DEL, then removes everything.
 */
let stdoutClosed = false;
let aborted = false;
const print = (s: string): void => {
  if (!stdoutClosed) process.stdout.write(s + '\n');
};
/** Progress of the demo's steps; silent once interrupted, while the cleanup runs. */
const say = (s: string): void => {
  if (!aborted) print(s);
};

async function ping(fromNetns: string, to: string): Promise<string> {
  const r = await run('ip', ['netns', 'exec', fromNetns, 'ping', '-c', '3', '-i', '0.2', '-W', '1', to], { allowFailure: true, timeoutMs: 10_000 });
  const m = /(\d+) received.*?(?:rtt [^=]+= [\d.]+\/([\d.]+))?/s.exec(r.stdout);
  const rtt = /rtt [^=]+= [\d.]+\/([\d.]+)/.exec(r.stdout)?.[1];
  return r.exitCode === 0 ? `ok (${m?.[1] ?? '?'}/3 replies${rtt ? `, avg ${rtt} ms` : ''})` : `FAILED: ${r.stdout.trim().split('\n').pop() ?? r.stderr}`;
}

export async function runDemo(cliEntry: string): Promise<number> {
  if (process.getuid?.() !== 0) throw new UserError('the demo creates network namespaces and must run as root');
  // Whatever happens to the terminal (output piped into `head`, Ctrl-C), the namespaces and the
  // agent must go: a closed stdout only stops the printing, a signal jumps to the cleanup.
  process.stdout.on('error', () => {
    stdoutClosed = true;
  });
  let interrupted: (() => void) | undefined;
  const interruption = new Promise<void>((resolve) => {
    interrupted = resolve;
  });
  const onSignal = (): void => {
    aborted = true;
    print('\nInterrupted.');
    interrupted?.();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  process.once('SIGHUP', onSignal);
  try {
    return await Promise.race([demo(cliEntry), interruption.then(() => 130)]);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.off('SIGHUP', onSignal);
    await cleanup?.();
  }
}

let cleanup: (() => Promise<void>) | undefined;

async function demo(cliEntry: string): Promise<number> {
  const prefix = randomPrefix('weftdemo');
  say(`Weft demo — everything lives in network namespaces named ${prefix}-*; the machine's own network is not touched.\n`);
  say('1. Starting a node (netns) with its weft agent: pod ranges 10.244.1.0/24 and fd00:244:1::/64 …');
  let sb: Sandbox | undefined;
  let failed = false;
  let cleaned = false;
  cleanup = async () => {
    if (!sb || cleaned) return;
    cleaned = true;
    print(aborted ? 'Cleaning up (agent, namespaces, temp files) …' : '\n6. Cleaning up (agent, namespaces, temp files) …');
    await stopSandbox(sb);
    print('   done.');
  };
  try {
    sb = await startSandbox({ prefix, podCidrs: ['10.244.1.0/24', 'fd00:244:1::/64'], cliEntry });
    say(`   agent ready on ${sb.socket}; plugin installed in ${sb.binDir}, conflist in ${sb.confDir}`);
    const list = await sandboxNetwork(sb);
    const runtime = sandboxRuntime(sb);
    const pods = ['web', 'db'];
    const addrs: Record<string, string[]> = {};
    say('\n2. Creating two pods; a CNI runtime runs the real `weft` plugin for each (CNI ADD):');
    for (const p of pods) {
      const netns = await createPodNetns(sb, p);
      const t0 = performance.now();
      const raw = await runtime.add(list, podConf(`demo-${p}`, netns, { args: [['IgnoreUnknown', '1'], ['K8S_POD_NAMESPACE', 'demo'], ['K8S_POD_NAME', p]] }));
      const ms = (performance.now() - t0).toFixed(0);
      const result = parseResult(raw, list.cniVersion, 'result');
      addrs[p] = (result.ips ?? []).map((ip) => addressOf(ip.address));
      say(`   pod ${p}: ${addrs[p]?.join(', ')}  (ADD took ${ms} ms)`);
    }
    const first = await runtime.cachedResult(list, 'demo-web', 'eth0');
    say(`\n   The CNI result for pod web (cniVersion ${list.cniVersion}):`);
    say(
      JSON.stringify(convertResult(parseResult(first, list.cniVersion), list.cniVersion), null, 2)
        .split('\n')
        .map((l) => `   ${l}`)
        .join('\n'),
    );
    say('\n3. Pod to pod, through the node (routed veth, no bridge):');
    for (const [from, to] of [['web', 'db'], ['db', 'web']] as const) {
      for (const a of addrs[to] ?? []) say(`   ${from} -> ${to} ${a.padEnd(18)} ${await ping(`${prefix}-${from}`, a)}`);
    }
    say('\n4. CNI CHECK of pod web: the kernel state matches its result …');
    await runtime.check(list, podConf('demo-web', `/run/netns/${prefix}-web`));
    say('   ok');
    say('\n5. Deleting both pods (CNI DEL) …');
    for (const p of pods) await runtime.del(list, podConf(`demo-${p}`, `/run/netns/${prefix}-${p}`));
    const left = await run('ip', ['-n', sb.nodeNetns, '-o', 'link', 'show', 'type', 'veth']);
    say(`   veths left on the node: ${left.stdout.trim() === '' ? 'none' : left.stdout.trim()}`);
  } catch (err) {
    failed = true;
    say(`\nThe demo failed: ${(err as Error).message}`);
  } finally {
    await cleanup();
  }
  return failed ? 1 : 0;
}

export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description('one node, two pods, in network namespaces: see weft allocate, attach, connect, check and clean up')
    .action(async () => {
      process.exitCode = await runDemo(fileURLToPath(import.meta.url));
    });
}
