import { convertResult } from '../cni/convert.js';
import { asCniError, CniError, ErrorCode } from '../cni/errors.js';
import { NetnsError, openNetns } from '../kernel/netns.js';
import { IMPLEMENTED_VERSION, SUPPORTED_VERSIONS } from '../cni/version.js';
import { callAgent } from './agent-client.js';
import { parseInvocation } from './invocation.js';

/**
 * The `weft` CNI plugin executable: validates, forwards to the agent, prints the answer in the
 * caller's version. Output goes to stdout (result or error object), logs to stderr, and the exit
 * code is 0 on success, 1 on any failure — the reference skel's contract.
 */
/** The most of stdin the plugin reads, and how long it waits for stdin to close. */
export const STDIN_LIMIT_BYTES = 1 << 20;
export const STDIN_TIMEOUT_MS = 10_000;

export interface PluginIO {
  env: Readonly<Record<string, string | undefined>>;
  readStdin: () => Promise<Buffer>;
  stdout: (s: string) => void;
  stderr: (s: string) => void;
}

export async function runPlugin(io: PluginIO): Promise<number> {
  let cniVersion: string | undefined;
  try {
    const inv = await parseInvocation(io.env, io.readStdin);
    if (inv.kind === 'about') {
      io.stderr(`CNI weft plugin\nCNI protocol versions supported: ${SUPPORTED_VERSIONS.join(', ')}\n`);
      return 0;
    }
    if (inv.kind === 'version') {
      io.stdout(JSON.stringify({ cniVersion: IMPLEMENTED_VERSION, supportedVersions: SUPPORTED_VERSIONS }));
      return 0;
    }
    cniVersion = inv.conf.cniVersion;
    const cmd = inv.request.command;
    if (cmd === 'ADD' || cmd === 'CHECK') await requireNetns(inv.request.netns);
    const reply = await callAgent(inv.socket, inv.request);
    if (inv.request.command === 'ADD') {
      if (!reply.result) throw new Error('the agent returned no result for ADD');
      io.stdout(JSON.stringify(convertResult(reply.result, cniVersion)));
    }
    return 0;
  } catch (err) {
    io.stdout(JSON.stringify(asCniError(err).toObject(cniVersion)));
    return 1;
  }
}

/**
 * Refuses a CNI_NETNS that is not a network namespace before anything is sent or changed (the
 * agent checks again, on its own open of it).
 */
async function requireNetns(path: string): Promise<void> {
  try {
    await (await openNetns(path)).close();
  } catch (err) {
    if (err instanceof NetnsError) throw new CniError(ErrorCode.InvalidEnvironment, err.message, 'it must name a network namespace, e.g. /run/netns/NAME or /proc/PID/ns/net');
    throw err;
  }
}
