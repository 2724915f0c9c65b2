/**
 * `weft node rotate-key`: the agent on this node makes a new WireGuard key pair, sets it on its
 * device and publishes the public key; peers follow from the Node object. The private key
 * never leaves the node (it is not printed either).
 */
import type { Command } from 'commander';
import { DEFAULT_SOCKET } from '../agent/api.js';
import { rotateKey } from '../agent/health-client.js';
import { UserError } from '../util/user-error.js';

export function registerNodeCommands(program: Command): void {
  const node = program.command('node').description("this node's own operations, through its agent");
  node
    .command('rotate-key')
    .description('make a new WireGuard key pair for this node and publish its public key (peers follow)')
    .option('--socket <path>', 'the agent socket', DEFAULT_SOCKET)
    .option('--force', "rotate even while a peer's agent is not running (that peer and this node are cut off from each other until it is back)")
    .option('--json', 'machine-readable output')
    .action(async (o: { socket: string; force?: boolean; json?: boolean }) => {
      const r = await rotateKey(o.socket, { force: o.force === true }).catch((err: Error) => {
        throw new UserError(`no agent answers on ${o.socket}: ${err.message}`);
      });
      if (!r.ok) throw new UserError(`the key was not rotated: ${r.error}`);
      process.stdout.write(o.json ? JSON.stringify(r) + '\n' : `new WireGuard public key ${r.publicKey} published; peers follow\n`);
    });
}
