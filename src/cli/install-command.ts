import type { Command } from 'commander';
import { DEFAULT_SOCKET } from '../agent/api.js';
import { validateNetworkName } from '../cni/netconf.js';
import { getHealth } from '../agent/health-client.js';
import { DEFAULT_STATE_DIR, parseMtu } from './agent-command.js';
import { UserError } from '../util/user-error.js';
import { DEFAULT_BIN_DIR, DEFAULT_CONF_DIR, install, uninstall } from '../install/install.js';

export function registerInstallCommands(program: Command): void {
  program
    .command('install')
    .description('write the weft plugin into a CNI bin dir and 10-weft.conflist into a CNI conf dir')
    .option('--cni-bin-dir <dir>', 'where runtimes look for plugins', DEFAULT_BIN_DIR)
    .option('--cni-conf-dir <dir>', 'where runtimes look for network configs', DEFAULT_CONF_DIR)
    .option('--socket <path>', 'the agent socket the installed plugin talks to', DEFAULT_SOCKET)
    .option('--network-name <name>', 'network name in the conflist', 'weft')
    .option('--mtu <n>', 'pod MTU written into the conflist (default: the agent decides)')
    .option('--chain <plugins>', 'reference plugins to chain after weft, comma-separated: portmap,bandwidth,tuning', '')
    .option('--plugin-dir <dir>', 'extra directory to search for --chain plugins', (v: string, p: string[]) => [...p, v], [] as string[])
    .option('--json', 'print what was written as JSON')
    .action(async (o: { cniBinDir: string; cniConfDir: string; socket: string; networkName: string; mtu?: string; chain: string; pluginDir: string[]; json?: boolean }) => {
      try {
        validateNetworkName(o.networkName);
      } catch {
        throw new UserError(`--network-name ${o.networkName}: use letters, digits, "_", "." and "-", starting with a letter or digit`);
      }
      if (!o.socket.startsWith('/')) throw new UserError(`--socket ${o.socket}: expected an absolute path`);
      const chain = o.chain.split(',').map((s) => s.trim()).filter((s) => s !== '');
      const report = await install({
        binDir: o.cniBinDir,
        confDir: o.cniConfDir,
        socket: o.socket,
        name: o.networkName,
        chain,
        pluginDirs: o.pluginDir,
        ...(o.mtu !== undefined ? { mtu: parseMtu(o.mtu) } : {}),
      });
      if (o.json) process.stdout.write(JSON.stringify(report) + '\n');
      else process.stdout.write(`installed ${report.plugin}\nwrote ${report.conflist} (cniVersion ${report.cniVersion}, agent socket ${o.socket})\n`);
    });

  program
    .command('uninstall')
    .description('remove what `weft install` wrote')
    .option('--cni-bin-dir <dir>', 'CNI bin dir', DEFAULT_BIN_DIR)
    .option('--cni-conf-dir <dir>', 'CNI conf dir', DEFAULT_CONF_DIR)
    .option('--socket <path>', 'the agent socket (with --all: removed; the agent must not answer on it)', DEFAULT_SOCKET)
    .option('--state-dir <dir>', 'the agent state dir (with --all: removed)', DEFAULT_STATE_DIR)
    .option('--keep-plugin', 'leave the plugin binary (other networks on this host use it)')
    .option('--all', "also everything else of Weft on this node, with its agent stopped: pods' links, the VXLAN device, Weft's routes and nftables tables, the state dir and socket (pods attached by Weft lose their network)")
    .action(async (o: { cniBinDir: string; cniConfDir: string; socket: string; stateDir: string; keepPlugin?: boolean; all?: boolean }) => {
      if (o.all) {
        const running = await getHealth(o.socket, 1000).then(
          () => true,
          () => false,
        );
        if (running) throw new UserError(`an agent answers on ${o.socket}: stop it first (on Kubernetes: kubectl delete -f deploy/weft.yaml), then run uninstall --all on each node`);
      }
      const removed = await uninstall({ binDir: o.cniBinDir, confDir: o.cniConfDir, keepPlugin: o.keepPlugin === true, ...(o.all ? { all: { stateDir: o.stateDir, socket: o.socket } } : {}) });
      process.stdout.write(removed.length ? removed.map((r) => `removed ${r}`).join('\n') + '\n' : 'nothing to remove\n');
    });
}
