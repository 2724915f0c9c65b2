import type { CniRequest } from './api.js';
import { DEFAULT_SOCKET } from './api.js';
import { parseCniArgs } from '../cni/args.js';
import { parseEnv, type CniEnv } from '../cni/env.js';
import { CniError, ErrorCode } from '../cni/errors.js';
import { asInternal } from '../cni/result.js';
import { argsCniIps, argsCniLabels, argsCniMac, parseNetConf, type NetConf } from '../cni/netconf.js';

/**
 * Turns one plugin execution (environment + stdin, as the forwarder carried them) into either
 * a VERSION/about answer or a request for the CNI service. Pure apart from reading stdin, which
 * is injected; every bad input becomes a CniError with the spec's code before anything is done.
 */
export type Invocation =
  | { kind: 'about' }
  | { kind: 'version' }
  | { kind: 'request'; env: CniEnv; conf: NetConf; socket: string; request: CniRequest };

/** Weft's own keys in its plugin config. */
export interface WeftPluginConfig {
  socket: string;
  mtu?: number;
}

export function parseWeftConfig(conf: NetConf): WeftPluginConfig {
  const raw = conf.raw;
  if (raw['ipam'] !== undefined) {
    throw new CniError(
      ErrorCode.UnsupportedField,
      `unsupported field "ipam": ${JSON.stringify(raw['ipam'])}`,
      "weft assigns addresses itself from the agent's pod ranges; remove \"ipam\" (use the \"ips\" capability or args.cni.ips for a fixed address)",
    );
  }
  const out: WeftPluginConfig = { socket: DEFAULT_SOCKET };
  const socket = raw['socket'];
  if (socket !== undefined) {
    if (typeof socket !== 'string' || !socket.startsWith('/')) {
      throw new CniError(ErrorCode.InvalidNetworkConfig, `"socket" must be an absolute path, got ${JSON.stringify(socket)}`, `e.g. "${DEFAULT_SOCKET}"`);
    }
    out.socket = socket;
  }
  const mtu = raw['mtu'];
  if (mtu !== undefined && mtu !== null) {
    if (typeof mtu !== 'number') throw new CniError(ErrorCode.DecodingFailure, `"mtu" must be a number, got ${JSON.stringify(mtu)}`);
    if (!Number.isInteger(mtu) || mtu < 68 || mtu > 65535) {
      throw new CniError(ErrorCode.InvalidNetworkConfig, `"mtu" ${mtu} is out of range`, 'accepted: an integer 68-65535 (1280 or more with IPv6)');
    }
    out.mtu = mtu;
  }
  return out;
}

export async function parseInvocation(
  envVars: Readonly<Record<string, string | undefined>>,
  readStdin: () => Promise<Buffer>,
): Promise<Invocation> {
  const env = parseEnv(envVars);
  if (!env) return { kind: 'about' };
  if (env.command === 'VERSION') return { kind: 'version' };
  let stdin: Buffer;
  try {
    stdin = await readStdin();
  } catch (err) {
    throw new CniError(ErrorCode.IoFailure, `error reading network config from stdin: ${(err as Error).message}`);
  }
  const conf = parseNetConf(stdin, env.command);
  const weft = parseWeftConfig(conf);
  const cniArgs = parseCniArgs(env.args);

  const request: CniRequest = {
    command: env.command,
    cniVersion: conf.cniVersion,
    network: conf.name,
    containerId: env.containerId,
    ifName: env.ifName,
    netns: env.netns,
    requestedIps: [],
  };
  // Requested addresses: the capability wins over args, args over CNI_ARGS (the spec's order).
  const sources: Array<[string, string[]]> = [
    ['runtimeConfig.ips', conf.runtimeConfig.ips ?? []],
    ['args.cni.ips', argsCniIps(conf)],
    ['CNI_ARGS IP', cniArgs.ips],
  ];
  const ipSource = sources.find(([, ips]) => ips.length > 0);
  if (ipSource) {
    request.requestedIps = ipSource[1];
    request.requestedIpsSource = ipSource[0];
  }
  const macSources: Array<[string, string | undefined]> = [
    ['runtimeConfig.mac', conf.runtimeConfig.mac],
    ['args.cni.mac', argsCniMac(conf)],
    ['CNI_ARGS MAC', cniArgs.mac],
  ];
  const macSource = macSources.find(([, m]) => m !== undefined);
  if (macSource?.[1] !== undefined) {
    request.mac = macSource[1];
    request.macSource = macSource[0];
  }
  if (weft.mtu !== undefined) request.mtu = weft.mtu;
  if (conf.dns) request.dns = conf.dns;
  if (conf.prevResult) request.prevResult = asInternal(conf.prevResult); // the wire format is the newest schema
  if (conf.validAttachments) request.validAttachments = conf.validAttachments;
  const labels = argsCniLabels(conf);
  if (cniArgs.podNamespace || cniArgs.podName || Object.keys(labels).length) {
    request.pod = {
      ...(cniArgs.podNamespace ? { namespace: cniArgs.podNamespace } : {}),
      ...(cniArgs.podName ? { name: cniArgs.podName } : {}),
      ...(cniArgs.podUid ? { uid: cniArgs.podUid } : {}),
      ...(Object.keys(labels).length ? { labels } : {}),
    };
  }
  return { kind: 'request', env, conf, socket: weft.socket, request };
}
