import { Option, type Command } from 'commander';
import { formatSilence } from '../cluster/liveness.js';
import { parseDuration } from './agent-command.js';
import { cliEntry } from '../util/built-file.js';
import { BACKENDS, type BackendType } from '../model/objects.js';
import { UserError } from '../util/user-error.js';
import { gridLines, legendLines, parseFamilies, parsePorts } from './grid.js';
import { labDatastoreStart, labDatastoreStop, labDown, labNodeAdd, labNodeRemove, labNodeRestart, labNodeRotateKey, labStatus, labUp, waitConverged, type LabStatus } from '../lab/lab.js';
import { loadLab } from '../lab/lab-state.js';
import { labExec, labMatrix, labProbe, nsCreate, nsDelete, nsLabel, podCreate, podDelete, podLabel, type Family, type Matrix } from '../lab/lab-pods.js';
import { parseLabelChanges, parsePodRef, parsePortSpec, resolveLabName, validateLabName } from '../lab/lab-state.js';
import { runPodServer, type PortSpec, type Protocol } from '../lab/pod-server.js';

/**
 * `weft lab …`: a virtual cluster on this machine, in network namespaces only (the machine's own
 * network is never touched). Every command takes --json for scripts.
 */
const out = (s: string): void => {
  process.stdout.write(s + '\n');
};
const json = (v: unknown): void => out(JSON.stringify(v, null, 2));

const collect = (v: string, p: string[]): string[] => [...p, v];

function labelMap(items: string[]): Record<string, string> {
  const { set, remove } = parseLabelChanges(items);
  if (remove.length) throw new UserError(`--label ${remove[0]}-: removing labels is for \`label\`, not \`create\``);
  return set;
}

function parseProtoPort(text: string): { port: number; protocol: Protocol } {
  const m = /^(\d{1,5})\/(tcp|udp|sctp)$/i.exec(text);
  const port = Number(m?.[1]);
  if (!m || port < 1 || port > 65535) throw new UserError(`${JSON.stringify(text)}: expected PORT/PROTO, e.g. 80/TCP or 53/UDP`);
  return { port, protocol: (m[2] as string).toUpperCase() as Protocol };
}


function printStatus(s: LabStatus): void {
  out(`lab ${s.name}: ${s.nodes.length} nodes, ${s.encryption === 'none' ? `${s.backend} backend` : `encrypted (${s.encryption}; ${s.backend} backend unused)`}, ${s.datastore} datastore`);
  for (const n of s.nodes) {
    // A node whose agent is down keeps its routes: say how long it has been silent.
    out(`  ${n.name.padEnd(8)} ${n.agent.padEnd(7)} ${n.ips.join(' ').padEnd(34)} blocks ${n.blocks.join(' ') || '-'}  peers ${n.peers.join(',') || '-'}${n.agent === 'running' && !n.datastoreConnected ? '  (datastore unreachable)' : ''}`);
    if (n.agent === 'down') out(`           ! agent not seen for ${n.agentSilentSeconds !== undefined ? formatSilence(n.agentSilentSeconds) : 'ever'}; its routes and pods stay until the node is removed`);
    const e = n.encryption;
    if (e) {
      const shaken = e.peers.map((p) => `${p.node} ${p.handshakeSecondsAgo !== undefined ? `${p.handshakeSecondsAgo}s ago` : 'no handshake yet'}`).join(', ');
      out(`           ${e.type} ${e.device} (${e.implementation ?? 'not up'}) port ${e.port} key ${e.publicKey}; handshakes: ${shaken || '-'}`);
    }
    for (const p of n.problems) out(`           ! ${p}`);
    for (const r of n.rejected) out(`           ! left out (not usable): ${r}`);
  }
  out(`  namespaces: ${s.namespaces.map((n) => n.name).join(', ') || '-'}`);
  for (const p of s.pods) {
    const labels = Object.entries(p.labels).map(([k, v]) => `${k}=${v}`).join(',');
    const ports = p.ports.map((x) => `${x.name ? `${x.name}:` : ''}${x.port}/${x.protocol}`).join(',');
    out(`  pod ${`${p.namespace}/${p.name}`.padEnd(22)} ${p.node.padEnd(8)} ${p.addresses.join(' ').padEnd(34)} ${ports.padEnd(16)} ${labels}`);
  }
  out(`  external host: ${s.external.ips.join(' ')} (netns ${s.external.netns})`);
}

export function printMatrix(m: Matrix): void {
  if (m.pods.length === 0) {
    out('the lab has no pods yet: weft lab pod create NS/POD --port 80/TCP');
    return;
  }
  const lines = legendLines(m.pods);
  for (const c of m.cases) {
    lines.push(
      ...gridLines(m.pods, `${c.protocol}/${c.port} over IPv${c.family} — row: from, column: to; "." reachable, "X" blocked, "-" nothing listens`, (from, to) => {
        const r = m.results.find((x) => x.from === from && x.to === to && x.port === c.port && x.protocol === c.protocol && x.family === c.family);
        return r?.ok ? '.' : r?.error === 'ECONNREFUSED' ? '-' : 'X';
      }),
    );
  }
  for (const l of lines) out(l);
}

/** Every command that names a lab takes --lab NAME, and --name NAME as an alias (merged in main.ts). */
export const labOpt = ['--lab <name>', 'which lab (may be omitted while only one runs); also --name'] as const;

export function labAlias(): Option {
  return new Option('--name <lab>', 'the same as --lab').hideHelp();
}

export function registerLabCommands(program: Command): void {
  const lab = program.command('lab').description('a virtual cluster in network namespaces on this machine: nodes, pods, probes');

  lab
    .command('up')
    .description('start a lab: an underlay switch, K nodes with their agents, an external host')
    .option('--lab <name>', 'the lab name (its netns names start with wl-NAME.); also --name')
    .addOption(labAlias())
    .option('--nodes <k>', 'number of nodes', '3')
    .option('--backend <type>', `${BACKENDS.join(' or ')}`, 'vxlan')
    .option('--encryption <type>', 'none, or wireguard: pod traffic between nodes is encrypted (WireGuard carries it in place of the backend)', 'none')
    .option('--datastore <kind>', 'file, etcd (a real etcd in the lab) or kubernetes (the tests\' Kubernetes API stand-in; a built checkout)', 'file')
    .option('--lease-duration <s>', 'agent lease, seconds: how fast a silent agent is reported', '10')
    .option('--node-grace <duration>', 'how long an agent may stay silent before its node counts as gone (e.g. 24h; 0 = never)', '24h')
    .option('--agent-log-level <level>', 'the agents\' log level: info, or debug (adds each policy sync\'s timings)', 'info')
    .option('--json', 'machine-readable output')
    .action(async (o: { lab?: string; nodes: string; backend: string; encryption: string; datastore: string; leaseDuration: string; nodeGrace: string; agentLogLevel: string; json?: boolean }) => {
      if (!o.lab) throw new UserError('--lab NAME is required (the lab to start; --name NAME works too)');
      const labName = o.lab;
      if (!(BACKENDS as readonly string[]).includes(o.backend)) throw new UserError(`--backend ${o.backend}: expected ${BACKENDS.join(' or ')}`);
      if (o.encryption !== 'none' && o.encryption !== 'wireguard') throw new UserError(`--encryption ${o.encryption}: expected none or wireguard`);
      if (o.datastore !== 'file' && o.datastore !== 'etcd' && o.datastore !== 'kubernetes') throw new UserError(`--datastore ${o.datastore}: expected file, etcd or kubernetes`);
      if (o.agentLogLevel !== 'info' && o.agentLogLevel !== 'debug') throw new UserError(`--agent-log-level ${o.agentLogLevel}: expected info or debug`);
      const nodes = Number(o.nodes);
      const lease = Number(o.leaseDuration);
      if (!/^\d+$/.test(o.leaseDuration) || lease < 3) throw new UserError(`--lease-duration ${o.leaseDuration}: expected seconds, 3 or more`);
      const t0 = Date.now();
      await labUp({
        name: labName,
        nodes,
        backend: o.backend as BackendType,
        ...(o.encryption === 'wireguard' ? { encryption: 'wireguard' as const } : {}),
        datastore: o.datastore,
        cliEntry: cliEntry(),
        leaseDurationSeconds: lease,
        nodeGraceSeconds: parseDuration('--node-grace', o.nodeGrace),
        agentLogLevel: o.agentLogLevel,
        progress: o.json ? () => undefined : (l) => out(`- ${l}`),
      });
      if (o.json) json(await labStatus(labName));
      else out(`lab ${labName} is up (${((Date.now() - t0) / 1000).toFixed(1)} s). Next: weft lab ns create NS; weft lab pod create NS/POD --port 80/TCP; weft lab matrix`);
    });

  lab
    .command('down')
    .description('stop a lab and remove everything it made (also after a crash)')
    .option(...labOpt).addOption(labAlias())
    .option('--json', 'machine-readable output')
    .action(async (o: { lab?: string; json?: boolean }) => {
      const name = o.lab ?? resolveLabName(undefined);
      validateLabName(name);
      const r = await labDown(name);
      if (o.json) json({ name, ...r });
      else out(`lab ${name} removed (${r.namespaces} namespaces, ${r.processes} processes)`);
    });

  lab
    .command('status')
    .description('nodes, pods, labels, ports and addresses of a lab')
    .option(...labOpt).addOption(labAlias())
    .option('--json', 'machine-readable output')
    .action(async (o: { lab?: string; json?: boolean }) => {
      const s = await labStatus(resolveLabName(o.lab));
      if (o.json) json(s);
      else printStatus(s);
    });

  const node = lab.command('node').description('nodes of a lab');
  node
    .command('add')
    .description('a new node joins the lab (and the cluster)')
    .option(...labOpt).addOption(labAlias())
    .option('--json', 'machine-readable output')
    .action(async (o: { lab?: string; json?: boolean }) => {
      const name = resolveLabName(o.lab);
      const t0 = Date.now();
      const n = await labNodeAdd(name, cliEntry());
      await waitConverged(loadLab(name));
      const ms = Date.now() - t0;
      if (o.json) json({ node: n.name, ips: n.ips, convergedMs: ms });
      else out(`${n.name} joined (${n.ips.join(', ')}); every node routes to every other after ${ms} ms`);
    });
  node
    .command('remove')
    .description('a node leaves: its pods are deleted, its agent deregisters, peers drop its routes')
    .argument('<node>')
    .option(...labOpt).addOption(labAlias())
    .option('--json', 'machine-readable output')
    .action(async (nodeName: string, o: { lab?: string; json?: boolean }) => {
      await labNodeRemove(resolveLabName(o.lab), nodeName);
      if (o.json) json({ removed: nodeName });
      else out(`${nodeName} removed`);
    });

  node
    .command('restart')
    .description("(re)starts the node's agent as a supervisor would (no leaving): it adopts the kernel state and repairs what drifted")
    .argument('<node>')
    .option(...labOpt).addOption(labAlias())
    .option('--json', 'machine-readable output')
    .action(async (nodeName: string, o: { lab?: string; json?: boolean }) => {
      const { wasRunning } = await labNodeRestart(resolveLabName(o.lab), nodeName, cliEntry());
      if (o.json) json({ node: nodeName, restarted: wasRunning, started: !wasRunning });
      else out(`${nodeName}: agent ${wasRunning ? 'restarted' : 'started'}`);
    });

  node
    .command('rotate-key')
    .description("the node's agent makes a new WireGuard key pair and publishes it; its peers follow (encrypted labs)")
    .argument('<node>')
    .option(...labOpt).addOption(labAlias())
    .option('--force', "rotate even while another node's agent is not running")
    .option('--json', 'machine-readable output')
    .action(async (nodeName: string, o: { lab?: string; force?: boolean; json?: boolean }) => {
      const publicKey = await labNodeRotateKey(resolveLabName(o.lab), nodeName, o.force === true);
      if (o.json) json({ node: nodeName, publicKey });
      else out(`${nodeName}: new WireGuard public key ${publicKey} published; peers follow`);
    });

  const ds = lab.command('datastore').description("the lab's etcd: stop it and start it again, to see the cluster ride out an outage");
  for (const [verb, fn, what] of [['stop', labDatastoreStop, 'stopped'], ['start', labDatastoreStart, 'started']] as const) {
    ds.command(verb)
      .description(`${verb} the lab's etcd (etcd labs only)`)
      .option(...labOpt).addOption(labAlias())
      .action(async (o: { lab?: string }) => {
        const name = resolveLabName(o.lab);
        await fn(name);
        out(`the etcd of lab ${name} is ${what}`);
      });
  }

  const ns = lab.command('ns').description('namespaces of a lab');
  ns.command('create')
    .description('create a namespace (labelled kubernetes.io/metadata.name=NS, as Kubernetes does)')
    .argument('<namespace>')
    .option('--label <k=v>', 'a label (repeatable)', collect, [] as string[])
    .option(...labOpt).addOption(labAlias())
    .option('--json', 'machine-readable output')
    .action(async (namespace: string, o: { label: string[]; lab?: string; json?: boolean }) => {
      const obj = await nsCreate(resolveLabName(o.lab), namespace, labelMap(o.label));
      if (o.json) json(obj);
      else out(`namespace ${namespace} created`);
    });
  ns.command('label')
    .description('set (k=v) or remove (k-) labels of a namespace')
    .argument('<namespace>')
    .argument('<labels...>')
    .option(...labOpt).addOption(labAlias())
    .option('--json', 'machine-readable output')
    .action(async (namespace: string, labels: string[], o: { lab?: string; json?: boolean }) => {
      const { set, remove } = parseLabelChanges(labels);
      const obj = await nsLabel(resolveLabName(o.lab), namespace, set, remove);
      if (o.json) json(obj);
      else out(`namespace ${namespace} labels: ${Object.entries(obj.metadata.labels ?? {}).map(([k, v]) => `${k}=${v}`).join(', ')}`);
    });

  ns.command('delete')
    .description('delete a namespace and the NetworkPolicies in it (delete its pods first)')
    .argument('<namespace>')
    .option(...labOpt).addOption(labAlias())
    .option('--json', 'machine-readable output')
    .action(async (namespace: string, o: { lab?: string; json?: boolean }) => {
      const r = await nsDelete(resolveLabName(o.lab), namespace);
      if (o.json) json({ namespace, deleted: true, policies: r.policies });
      else out(`namespace ${namespace} deleted${r.policies ? ` (and ${r.policies} NetworkPolic${r.policies === 1 ? 'y' : 'ies'} in it)` : ''}`);
    });

  const pod = lab.command('pod').description('pods of a lab');
  pod
    .command('create')
    .description('create a pod: a netns attached by the real plugin, serving its ports (TCP and UDP)')
    .argument('<ns/pod>')
    .option('--node <node>', 'where it runs (default: round-robin)')
    .option('--label <k=v>', 'a label (repeatable)', collect, [] as string[])
    .option('--port <[name:]port[/proto]>', 'a container port, e.g. http:80/TCP (repeatable)', collect, [] as string[])
    .option(...labOpt).addOption(labAlias())
    .option('--json', 'machine-readable output')
    .action(async (ref: string, o: { node?: string; label: string[]; port: string[]; lab?: string; json?: boolean }) => {
      const { namespace, name } = parsePodRef(ref);
      const ports: PortSpec[] = o.port.map(parsePortSpec);
      const p = await podCreate(resolveLabName(o.lab), { namespace, name, labels: labelMap(o.label), ports, ...(o.node ? { node: o.node } : {}) }, cliEntry());
      if (o.json) json(p);
      else out(`pod ${namespace}/${name} on ${p.node}: ${p.addresses.join(', ')}`);
    });
  pod
    .command('label')
    .description('set (k=v) or remove (k-) labels of a pod')
    .argument('<ns/pod>')
    .argument('<labels...>')
    .option(...labOpt).addOption(labAlias())
    .option('--json', 'machine-readable output')
    .action(async (ref: string, labels: string[], o: { lab?: string; json?: boolean }) => {
      const { set, remove } = parseLabelChanges(labels);
      const obj = await podLabel(resolveLabName(o.lab), parsePodRef(ref), set, remove);
      if (o.json) json(obj);
      else out(`pod ${ref} labels: ${Object.entries(obj.metadata.labels ?? {}).map(([k, v]) => `${k}=${v}`).join(', ') || '-'}`);
    });
  pod
    .command('delete')
    .description('delete a pod (CNI DEL, its netns, its Pod object)')
    .argument('<ns/pod>')
    .option(...labOpt).addOption(labAlias())
    .option('--json', 'machine-readable output')
    .action(async (ref: string, o: { lab?: string; json?: boolean }) => {
      await podDelete(resolveLabName(o.lab), parsePodRef(ref));
      if (o.json) json({ deleted: ref });
      else out(`pod ${ref} deleted`);
    });

  lab
    .command('exec')
    .description('run a command inside a pod\'s network namespace: weft lab exec NS/POD -- CMD [ARGS…]')
    .argument('<ns/pod>')
    .argument('[command...]')
    .option(...labOpt).addOption(labAlias())
    .action(async (ref: string, command: string[], o: { lab?: string }) => {
      process.exitCode = await labExec(resolveLabName(o.lab), parsePodRef(ref), command);
    });

  lab
    .command('probe')
    .description('can pod A reach B (a pod, "external", or an address) on PORT/PROTO? exit status 0 if so, 1 if not')
    .argument('<from>', 'NS/POD')
    .argument('<to>', 'NS/POD, external, or an address')
    .argument('<port/proto>', 'e.g. 80/TCP')
    .option('--family <4|6>', 'address family of the target', '4')
    .option('--timeout <ms>', 'how long to wait for an answer', '1000')
    .option(...labOpt).addOption(labAlias())
    .option('--json', 'machine-readable output')
    .action(async (from: string, to: string, pp: string, o: { family: string; timeout: string; lab?: string; json?: boolean }) => {
      const { port, protocol } = parseProtoPort(pp);
      const fam = parseFamilies(o.family);
      if (fam.length !== 1) throw new UserError('--family: one of 4 or 6 for a probe');
      const r = await labProbe(resolveLabName(o.lab), parsePodRef(from), to, port, protocol, fam[0] as Family, Number(o.timeout));
      if (o.json) json(r);
      else out(r.ok ? `${from} -> ${r.to} (${r.address}) ${protocol}/${port}: reachable in ${r.ms} ms; answer: ${r.reply}` : `${from} -> ${r.to} (${r.address}) ${protocol}/${port}: blocked (${r.error})`);
      process.exitCode = r.ok ? 0 : 1;
    });

  lab
    .command('matrix')
    .description('probe every pod from every pod: which can reach which, per port and protocol')
    .option('--ports <list>', 'ports to probe, comma-separated, each with each protocol (default: the ports pods declare)')
    .option('--protocols <list>', 'tcp, udp', 'tcp,udp')
    .option('--family <4|6|both>', 'address family', '4')
    .option('--timeout <ms>', 'how long a probe waits', '1000')
    .option(...labOpt).addOption(labAlias())
    .option('--json', 'machine-readable output')
    .action(async (o: { ports?: string; protocols: string; family: string; timeout: string; lab?: string; json?: boolean }) => {
      const ports = o.ports !== undefined ? parsePorts(o.ports) : undefined;
      const protocols = o.protocols.split(',').map((p) => {
        const u = p.toUpperCase();
        if (u !== 'TCP' && u !== 'UDP') throw new UserError(`--protocols ${o.protocols}: expected tcp and/or udp`);
        return u as Protocol;
      });
      const m = await labMatrix(resolveLabName(o.lab), { ...(ports ? { ports } : {}), protocols, families: parseFamilies(o.family), timeoutMs: Number(o.timeout) });
      if (o.json) json(m);
      else printMatrix(m);
    });

  // What runs inside each lab pod; started by `pod create`, not by people.
  lab
    .command('pod-server', { hidden: true })
    .requiredOption('--identity <id>')
    .requiredOption('--control <path>')
    .option('--port <port/proto>', 'repeatable', collect, [] as string[])
    .action(async (o: { identity: string; control: string; port: string[] }) => {
      const srv = await runPodServer({ identity: o.identity, control: o.control, ports: o.port.map(parseProtoPort) });
      await new Promise<void>((resolve) => {
        process.once('SIGTERM', resolve);
        process.once('SIGINT', resolve);
      });
      await srv.close();
    });
}
