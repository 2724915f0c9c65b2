import type { Command } from 'commander';
import { CniError } from '../cni/errors.js';
import { loadNetwork } from '../cniruntime/loader.js';
import { CniRuntime, type RuntimeConf } from '../cniruntime/runtime.js';
import { DEFAULT_BIN_DIR, DEFAULT_CONF_DIR } from '../install/install.js';
import { UserError } from '../util/user-error.js';

/**
 * `weft cni add|check|del|gc|status`: a CNI runtime on the command line (like cnitool), running
 * a conflist's plugins with the exact exec protocol real runtimes use.
 */
export const DEFAULT_CACHE_DIR = '/var/lib/weft/cni-cache';

interface CniOpts {
  confDir: string;
  binDir: string;
  network?: string;
  netns?: string;
  containerId?: string;
  ifname: string;
  args?: string;
  capArgs?: string;
  cacheDir: string;
  valid: string[];
  json?: boolean;
  inNetns?: string;
}

export function parseArgsOption(s: string | undefined): Array<[string, string]> {
  if (!s) return [];
  return s
    .split(';')
    .filter((p) => p !== '')
    .map((p) => {
      const i = p.indexOf('=');
      if (i <= 0) throw new UserError(`--args: "${p}" is not KEY=VALUE (pairs are separated by ";")`);
      return [p.slice(0, i), p.slice(i + 1)] as [string, string];
    });
}

function parseCapArgs(s: string | undefined): Record<string, unknown> {
  if (!s) return {};
  try {
    const v = JSON.parse(s) as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object');
    return v as Record<string, unknown>;
  } catch (err) {
    throw new UserError(`--cap-args: expected a JSON object such as '{"ips":["10.244.1.9"]}' (${(err as Error).message})`);
  }
}

/** A bare name means /run/netns/NAME, as `ip netns` names it. */
export function netnsPath(s: string): string {
  return s.includes('/') ? s : `/run/netns/${s}`;
}

function runtimeConf(o: CniOpts, needNetns: boolean): RuntimeConf {
  if (!o.containerId) throw new UserError('--container-id is required');
  if (needNetns && !o.netns) throw new UserError('--netns is required (a path, or a name under /run/netns)');
  return {
    containerId: o.containerId,
    netns: o.netns ? netnsPath(o.netns) : '',
    ifName: o.ifname,
    args: parseArgsOption(o.args),
    capabilityArgs: parseCapArgs(o.capArgs),
  };
}

function parseValid(list: string[]): Array<{ containerId: string; ifName: string }> {
  return list
    .flatMap((v) => v.split(','))
    .filter((v) => v !== '')
    .map((v) => {
      const [containerId, ifName] = v.split('/');
      if (!containerId) throw new UserError(`--valid ${v}: expected CONTAINER_ID[/IFNAME]`);
      return { containerId, ifName: ifName || 'eth0' };
    });
}

async function runCni(command: string, o: CniOpts): Promise<void> {
  const list = await loadNetwork(o.confDir, o.network);
  const runtime = new CniRuntime({
    path: o.binDir.split(':').filter((d) => d !== ''),
    cacheDir: o.cacheDir,
    ...(o.inNetns ? { netns: netnsPath(o.inNetns) } : {}),
  });
  try {
    switch (command) {
      case 'add': {
        const result = await runtime.add(list, runtimeConf(o, true));
        process.stdout.write(JSON.stringify(result, null, o.json ? undefined : 2) + '\n');
        return;
      }
      case 'check':
        await runtime.check(list, runtimeConf(o, true));
        break;
      case 'del':
        await runtime.del(list, runtimeConf(o, false));
        break;
      case 'gc':
        await runtime.gc(list, parseValid(o.valid));
        break;
      case 'status':
        await runtime.status(list);
        break;
    }
    if (o.json) process.stdout.write('{}\n');
  } catch (err) {
    if (err instanceof CniError && o.json) {
      process.stdout.write(JSON.stringify(err.toObject()) + '\n');
      process.exitCode = 1;
      return;
    }
    throw err;
  }
}

export function registerCniCommands(program: Command): void {
  const cni = program.command('cni').description('run a CNI network (conflist) against a network namespace, as a container runtime would');
  for (const [name, what] of [
    ['add', 'attach a container: ADD every plugin of the conflist in order; prints the result'],
    ['check', 'CHECK an attachment against its cached result'],
    ['del', 'DEL an attachment (plugins in reverse order)'],
    ['gc', 'remove every attachment of the network except those given with --valid'],
    ['status', 'ask every plugin whether it can serve ADD now'],
  ] as const) {
    cni
      .command(name)
      .description(what)
      .option('--conf-dir <dir>', 'CNI conf dir to load the network from', DEFAULT_CONF_DIR)
      .option('--bin-dir <dirs>', 'plugin directories, ":"-separated (CNI_PATH)', DEFAULT_BIN_DIR)
      .option('--network <name>', 'network name (default: the first config in --conf-dir)')
      .option('--netns <path>', 'the container netns: a path, or a name under /run/netns')
      .option('--container-id <id>', 'container id')
      .option('--ifname <name>', 'interface name in the container', 'eth0')
      .option('--args <k=v;...>', 'CNI_ARGS, e.g. "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web"')
      .option('--cap-args <json>', 'capability arguments as JSON, e.g. \'{"portMappings":[...]}\'')
      .option('--cache-dir <dir>', 'result cache directory', DEFAULT_CACHE_DIR)
      .option('--valid <id/ifname>', 'gc: an attachment to keep (repeatable, or comma-separated)', (v: string, p: string[]) => [...p, v], [] as string[])
      .option('--in-netns <path>', "run the plugins inside this netns (a lab node's), not this shell's")
      .option('--json', 'machine-readable output (errors as CNI error objects on stdout)')
      .action((o: CniOpts) => runCni(name, o));
  }
}
