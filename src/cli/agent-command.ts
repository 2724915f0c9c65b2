import type { Command } from 'commander';
import { DEFAULT_SOCKET } from '../agent/api.js';
import { startAgent } from '../agent/agent.js';
import { ADD_PHASES, type AddPhase } from '../agent/cni-service.js';
import { AddressError, parseCidr, type Cidr } from '../ipam/cidr.js';
import { createLogger, type LogLevel } from '../util/log.js';
import { UserError } from '../util/user-error.js';

export const DEFAULT_STATE_DIR = '/var/lib/weft';

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export function parsePodCidrs(values: string[]): Cidr[] {
  if (values.length === 0) throw new UserError('--pod-cidr is required (e.g. --pod-cidr 10.244.1.0/24 --pod-cidr fd00:244:1::/64)');
  if (values.length > 2) throw new UserError('at most two --pod-cidr: one IPv4 and one IPv6');
  const cidrs = values.map((v) => {
    try {
      return parseCidr(v);
    } catch (err) {
      throw new UserError(`--pod-cidr: ${(err as AddressError).message}`);
    }
  });
  if (cidrs.length === 2 && cidrs[0]?.family === cidrs[1]?.family) {
    throw new UserError('the two --pod-cidr must be of different families (one IPv4, one IPv6)');
  }
  return cidrs;
}

export function parseMtu(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < 68 || n > 65535) throw new UserError(`--mtu ${v}: expected an integer 68-65535`);
  return n;
}

/** WEFT_TEST_PAUSE_ADD=PHASE:MS — a fault point for crash tests only; never set in production. */
export function testPauseFromEnv(value: string | undefined): { phase: AddPhase; ms: number } | undefined {
  if (!value) return undefined;
  const [phase, ms] = value.split(':');
  if (!(ADD_PHASES as readonly string[]).includes(phase ?? '') || !/^\d+$/.test(ms ?? '')) {
    throw new UserError(`WEFT_TEST_PAUSE_ADD=${value}: expected PHASE:MS with PHASE one of ${ADD_PHASES.join(', ')}`);
  }
  return { phase: phase as AddPhase, ms: Number(ms) };
}

export function registerAgentCommand(program: Command): void {
  program
    .command('agent')
    .description('run the node agent: serves the CNI plugin on a unix socket, owns IPAM and the pod datapath')
    .option('--state-dir <dir>', 'where IPAM reservations and attachment records live', DEFAULT_STATE_DIR)
    .option('--socket <path>', 'unix socket the plugin talks to (created mode 0600)', DEFAULT_SOCKET)
    .option('--pod-cidr <cidr>', "this node's pod range; once per family (IPv4, IPv6)", collect, [] as string[])
    .option('--mtu <n>', 'pod interface MTU unless the network config sets one', '1500')
    .option('--log-level <level>', 'debug, info, warn or error', 'info')
    .action(async (o: { stateDir: string; socket: string; podCidr: string[]; mtu: string; logLevel: string }) => {
      const level = o.logLevel as LogLevel;
      if (!['debug', 'info', 'warn', 'error'].includes(level)) throw new UserError(`--log-level ${o.logLevel}: expected debug, info, warn or error`);
      const podCidrs = parsePodCidrs(o.podCidr);
      const mtu = parseMtu(o.mtu);
      const log = createLogger(level, { component: 'agent' });
      const pauseAt = testPauseFromEnv(process.env['WEFT_TEST_PAUSE_ADD']);
      let agent;
      try {
        agent = await startAgent({ stateDir: o.stateDir, socketPath: o.socket, podCidrs, mtu, log, ...(pauseAt ? { pauseAt } : {}) });
      } catch (err) {
        if (err instanceof AddressError) throw new UserError(err.message);
        throw err;
      }
      const running = agent;
      await new Promise<void>((resolve) => {
        const stop = (sig: string): void => {
          log.info('stopping', { signal: sig });
          void running.stop().then(resolve);
        };
        process.once('SIGTERM', () => stop('SIGTERM'));
        process.once('SIGINT', () => stop('SIGINT'));
      });
    });
}
