/**
 * WireGuard devices, through Debian's tools: the kernel's (`ip link add … type wireguard`)
 * where the kernel has the module, else `wireguard-go`, a TUN device served by a process.
 * Configured with `wg`: the private key from its file (0600, in the agent's state dir), never
 * on a command line, nor on stdin (node gives a child a socket there, which `wg` cannot open by
 * path); peers with `wg set`, their public keys as arguments. A device's configuration is read back with `wg show … dump`,
 * whose private key is dropped at once.
 */
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { CommandError, endProcess, run, startDaemon } from './exec.js';
import { ip, isIpNotFound } from './ip.js';

/** Where wireguard-go serves a device's configuration (and where `wg` looks for it first). */
export const UAPI_DIR = '/var/run/wireguard';
export const uapiSocket = (dev: string): string => join(UAPI_DIR, `${dev}.sock`);

export type WireGuardImplementation = 'kernel' | 'wireguard-go';

export class WireGuardError extends Error {
  constructor(
    readonly device: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`WireGuard device ${device}: ${message}`, options);
    this.name = 'WireGuardError';
  }
}

export interface WgPeerState {
  publicKey: string;
  endpoint: string | undefined;
  allowedIps: string[];
  /** Seconds since the epoch of the last handshake; 0: never. */
  latestHandshake: number;
  rxBytes: number;
  txBytes: number;
  persistentKeepalive: number | undefined;
}

export interface WgDeviceState {
  publicKey: string | undefined;
  listenPort: number;
  peers: WgPeerState[];
}

/** Parses `wg show DEV dump` (pure); the private key in its first line is not kept. */
export function parseWgDump(text: string): WgDeviceState {
  const lines = text.split('\n').filter((l) => l !== '');
  const head = (lines[0] ?? '').split('\t');
  const none = (v: string | undefined): string | undefined => (v === undefined || v === '(none)' || v === 'off' ? undefined : v);
  return {
    publicKey: none(head[1]),
    listenPort: Number(head[2] ?? 0),
    peers: lines.slice(1).map((l) => {
      const f = l.split('\t');
      const keepalive = none(f[7]);
      return {
        publicKey: f[0] ?? '',
        endpoint: none(f[2]),
        allowedIps: (none(f[3]) ?? '').split(',').filter((x) => x !== ''),
        latestHandshake: Number(f[4] ?? 0),
        rxBytes: Number(f[5] ?? 0),
        txBytes: Number(f[6] ?? 0),
        persistentKeepalive: keepalive === undefined ? undefined : Number(keepalive),
      };
    }),
  };
}

function wgFailed(dev: string, what: string, err: unknown): WireGuardError {
  const why = err instanceof CommandError ? err.stderr.trim() || err.message : (err as Error).message;
  return new WireGuardError(dev, `${what}: ${why}`, { cause: err });
}

/** The device's configuration, or undefined when there is no such WireGuard device. */
export async function wgShow(dev: string, netns?: string): Promise<WgDeviceState | undefined> {
  // The dump's first line holds the private key: an error made here carries none of the output.
  const [file, args] = netns === undefined ? ['wg', ['show', dev, 'dump']] : ['nsenter', [`--net=${netns}`, '--', 'wg', 'show', dev, 'dump']];
  const r = await run(file, args, { allowFailure: true, timeoutMs: 5000 }).catch((err: unknown) => {
    throw new WireGuardError(dev, `wg show ${err instanceof CommandError && err.timedOut ? 'timed out' : 'failed'}`);
  });
  if (r.exitCode !== 0) {
    if (/No such device|Unable to access interface|Protocol not supported/i.test(r.stderr)) return undefined;
    throw new WireGuardError(dev, `wg show: ${r.stderr.trim()}`);
  }
  return parseWgDump(r.stdout);
}

/** Sets the private key (from its file) and the listen port; the same key again changes nothing. */
export async function wgSetIdentity(dev: string, keyFile: string, port: number): Promise<void> {
  await run('wg', ['set', dev, 'listen-port', String(port), 'private-key', keyFile], { timeoutMs: 5000 }).catch((err: unknown) => {
    throw wgFailed(dev, 'setting its key and port', err);
  });
}

/** Sets the private key alone (a rotation): the port is not set again, which would rebind wireguard-go's sockets. */
export async function wgSetPrivateKey(dev: string, keyFile: string): Promise<void> {
  await run('wg', ['set', dev, 'private-key', keyFile], { timeoutMs: 5000 }).catch((err: unknown) => {
    throw wgFailed(dev, 'setting its key', err);
  });
}

/** A peer as `wg set` takes it: public keys are public, and may be arguments. */
export type WgPeerChange = { publicKey: string; remove: true } | { publicKey: string; endpoint: string; allowedIps: string[]; persistentKeepalive: number };

/** `wg set` arguments for peer changes (pure); allowed-ips replaces a peer's list. */
export function wgSetArgs(dev: string, changes: readonly WgPeerChange[]): string[] {
  const args = ['set', dev];
  for (const c of changes) {
    if ('remove' in c) args.push('peer', c.publicKey, 'remove');
    else args.push('peer', c.publicKey, 'endpoint', c.endpoint, 'persistent-keepalive', String(c.persistentKeepalive), 'allowed-ips', c.allowedIps.join(','));
  }
  return args;
}

/**
 * Applies peer changes, a few hundred per `wg set`; peers not named keep their sessions. (Not
 * `wg syncconf`: a config it reads without a private key clears the device's.)
 */
export async function wgSetPeers(dev: string, changes: readonly WgPeerChange[]): Promise<void> {
  for (let i = 0; i < changes.length; i += 200) {
    await run('wg', wgSetArgs(dev, changes.slice(i, i + 200)), { timeoutMs: 10_000 }).catch((err: unknown) => {
      throw wgFailed(dev, 'setting its peers', err);
    });
  }
}

/** The kind of an existing link (`wireguard`, `tun`, …), or undefined when there is none. */
export async function linkKind(dev: string): Promise<string | undefined> {
  try {
    const [l] = JSON.parse(await ip(['-json', '-details', 'link', 'show', 'dev', dev])) as Array<{ linkinfo?: { info_kind?: string } }>;
    return l?.linkinfo?.info_kind ?? 'unknown';
  } catch (err) {
    if (isIpNotFound(err)) return undefined;
    throw err;
  }
}

/** Creates a kernel WireGuard device; false when this kernel has no WireGuard. */
export async function createKernelDevice(dev: string): Promise<boolean> {
  try {
    await ip(['link', 'add', 'dev', dev, 'type', 'wireguard']);
    return true;
  } catch (err) {
    if (/Unknown device type|not supported|Invalid argument/i.test((err as Error).message)) return false;
    throw new WireGuardError(dev, `creating it: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Starts wireguard-go for `dev` in this process's netns, in the foreground of a process of its
 * own that outlives the caller (an agent restart must not take the tunnel down), and waits
 * until its device and configuration socket are there. Returns its pid.
 */
export async function startUserspaceDevice(dev: string, logFile: string, timeoutMs = 10_000): Promise<number> {
  // A socket left by a wireguard-go that was killed would be taken for the new one's.
  rmSync(uapiSocket(dev), { force: true });
  // Only what it needs of the agent's environment (LOG_LEVEL: its own verbosity, for debugging).
  const env: NodeJS.ProcessEnv = { PATH: process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin', WG_PROCESS_FOREGROUND: '1', ...(process.env['LOG_LEVEL'] ? { LOG_LEVEL: process.env['LOG_LEVEL'] } : {}) };
  const child = await startDaemon('wireguard-go', [dev], { env, logFile, detached: true });
  const pid = child.pid;
  if (pid === undefined) throw new WireGuardError(dev, 'wireguard-go did not start');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new WireGuardError(dev, `wireguard-go exited with ${child.exitCode} at start (log: ${logFile})`);
    if (existsSync(uapiSocket(dev)) && (await linkKind(dev)) !== undefined) return pid;
    if (Date.now() > deadline) {
      await endProcess(pid, 2000); // not left running half-started
      throw new WireGuardError(dev, `wireguard-go did not bring it up within ${timeoutMs / 1000} s (log: ${logFile})`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}
