import type { Command } from 'commander';
import { fileURLToPath } from 'node:url';
import { labDown, labStatus, labUp } from '../lab/lab.js';
import { labMatrix, labProbe, nsCreate, podCreate } from '../lab/lab-pods.js';
import { listLabs } from '../lab/lab-state.js';
import { UserError } from '../util/user-error.js';
import { printMatrix } from './lab-command.js';

/**
 * `weft demo`: a 3-node cluster in network namespaces on this machine (its own network is never
 * touched), pods in two namespaces on different nodes, and who can reach whom — then everything
 * is removed again (unless --keep).
 */
let stdoutClosed = false;
let aborted = false;
const print = (s = ''): void => {
  if (!stdoutClosed) process.stdout.write(s + '\n');
};
const say = (s = ''): void => {
  if (!aborted) print(s);
};

export async function runDemo(cliEntry: string, opts: { keep: boolean; backend: 'vxlan' | 'host-gw' }): Promise<number> {
  if (process.getuid?.() !== 0) throw new UserError('the demo creates network namespaces and must run as root');
  const name = 'demo';
  if (listLabs().includes(name)) throw new UserError('a lab named "demo" is running already: `weft lab down --name demo` first');
  // A closed stdout (piped into `head`) only stops the printing; a signal jumps to the cleanup.
  process.stdout.on('error', () => {
    stdoutClosed = true;
  });
  let interrupted: (() => void) | undefined;
  const interruption = new Promise<number>((resolve) => {
    interrupted = () => resolve(130);
  });
  const onSignal = (): void => {
    aborted = true;
    print('\nInterrupted.');
    interrupted?.();
  };
  for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(s, onSignal);
  let up = false;
  let code = 1;
  try {
    code = await Promise.race([
      demo(name, cliEntry, opts.backend, () => {
        up = true;
      }),
      interruption,
    ]);
  } catch (err) {
    print(`\nThe demo failed: ${(err as Error).message}`);
    code = 1;
  } finally {
    for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.off(s, onSignal);
    if (up && (!opts.keep || aborted || code !== 0)) {
      print(aborted ? 'Cleaning up (agents, namespaces, files) …' : '\n7. Cleaning up (agents, namespaces, files) …');
      await labDown(name).catch((err: Error) => print(`   cleanup failed: ${err.message}`));
      print('   done: nothing of the demo is left on this machine.');
    } else if (up) {
      print('\nThe lab "demo" keeps running. Try: weft lab status · weft lab matrix · weft lab probe shop/web-1 data/db 5432/TCP · weft lab down --name demo');
    }
  }
  return code;
}

async function demo(name: string, cliEntry: string, backend: 'vxlan' | 'host-gw', started: () => void): Promise<number> {
  say('Weft demo: a small Kubernetes-style cluster, built from network namespaces on this machine.');
  say('Nothing here touches the machine\'s own network; everything is removed at the end.\n');
  say(`1. Three nodes on one underlay network, each running its own weft agent (${backend} backend, file datastore):`);
  const t0 = Date.now();
  started();
  await labUp({ name, nodes: 3, backend, datastore: 'file', cliEntry, progress: (l) => say(`   - ${l}`) });
  const st = await labStatus(name);
  for (const n of st.nodes) say(`   ${n.name}: underlay ${n.ips[0]}, leased pod blocks ${n.blocks.join(' and ')}`);
  say(`   (up in ${((Date.now() - t0) / 1000).toFixed(1)} s)\n`);

  say('2. Two namespaces, "shop" and "data", and three pods spread over the nodes.');
  say('   Each pod is a network namespace attached by the real weft CNI plugin, serving TCP 80 and UDP 53:');
  await nsCreate(name, 'shop', { team: 'shop' });
  await nsCreate(name, 'data', { team: 'data' });
  const ports = [
    { name: 'http', port: 80, protocol: 'TCP' as const },
    { name: 'dns', port: 53, protocol: 'UDP' as const },
  ];
  for (const [ns, pod, node, app] of [
    ['shop', 'web-1', 'node-1', 'web'],
    ['shop', 'web-2', 'node-2', 'web'],
    ['data', 'db', 'node-3', 'db'],
  ] as const) {
    const p = await podCreate(name, { namespace: ns, name: pod, node, labels: { app }, ports }, cliEntry);
    say(`   ${`${ns}/${pod}`.padEnd(12)} on ${node}: ${p.addresses.join(', ')}`);
  }

  say('\n3. Who can reach whom: every pod probes every pod (itself too), TCP 80 and UDP 53, IPv4 and IPv6.');
  say('   Pods on different nodes go through the overlay; nothing blocks them yet (no policies).');
  const m = await labMatrix(name, { protocols: ['TCP', 'UDP'], families: [4, 6], timeoutMs: 1500 });
  if (!aborted) printMatrix(m);
  const ok = m.results.filter((r) => r.ok).length;
  say(`\n   ${ok} of ${m.results.length} probes answered.`);

  say('\n4. A probe answers with the address it came from: pod to pod, the pod\'s own address survives.');
  const p1 = await labProbe(name, { namespace: 'shop', name: 'web-1' }, 'data/db', 80, 'TCP', 4, 2000);
  say(`   shop/web-1 -> data/db: ${p1.ok ? `"${p1.reply}"` : `failed (${p1.error})`}`);
  say('\n5. To the outside, pods are masqueraded: the external host sees the node, not the pod.');
  const p2 = await labProbe(name, { namespace: 'shop', name: 'web-1' }, 'external', 80, 'TCP', 4, 2000);
  say(`   shop/web-1 -> external host ${p2.address}: ${p2.ok ? `"${p2.reply}"` : `failed (${p2.error})`}`);
  say('\n6. Every command here has a `weft lab …` equivalent with --json for scripts; `weft lab --help` lists them.');
  return ok === m.results.length && p1.ok && p2.ok ? 0 : 1;
}

export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description('a 3-node cluster in network namespaces: pods in two namespaces, who reaches whom, then cleaned up')
    .option('--keep', 'leave the lab running afterwards (remove it with `weft lab down --name demo`)')
    .option('--backend <type>', 'vxlan or host-gw', 'vxlan')
    .action(async (o: { keep?: boolean; backend: string }) => {
      if (o.backend !== 'vxlan' && o.backend !== 'host-gw') throw new UserError(`--backend ${o.backend}: expected vxlan or host-gw`);
      process.exitCode = await runDemo(fileURLToPath(import.meta.url), { keep: o.keep === true, backend: o.backend });
    });
}
