/**
 * `weft ui --listen`: the address the page is served on, parsed and judged (pure). The UI has no
 * authentication, so only a loopback address is taken unless the user says, with
 * --allow-remote, that anyone who can reach the port may see the cluster.
 */
import { isIP } from 'node:net';
import { UserError } from '../util/user-error.js';

export const DEFAULT_LISTEN = '127.0.0.1:8484';

export interface ListenAddress {
  host: string;
  port: number;
  loopback: boolean;
}

const ACCEPTED = 'expected ADDRESS:PORT, e.g. 127.0.0.1:8484, [::1]:8484 or localhost:8484 (PORT 0: any free port)';

export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  if (isIP(host) === 6) return host === '::1' || /^(0{1,4}:){7}0{0,3}1$/.test(host);
  return false;
}

/** "127.0.0.1:8484", "[::1]:8484", "localhost:0" → host and port; anything else is refused. */
export function parseListen(text: string, allowRemote = false): ListenAddress {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^\s:[\]]+)):(\d{1,5})$/.exec(text.trim());
  if (!m) throw new UserError(`--listen ${JSON.stringify(text)}: ${ACCEPTED}`);
  const host = (m[1] ?? m[2]) as string;
  const port = Number(m[3]);
  if (port > 65535) throw new UserError(`--listen ${JSON.stringify(text)}: port ${port} is out of range (0-65535)`);
  if (m[1] !== undefined && isIP(host) !== 6) throw new UserError(`--listen ${JSON.stringify(text)}: ${host} in brackets is no IPv6 address`);
  if (m[2] !== undefined && host !== 'localhost' && isIP(host) !== 4) throw new UserError(`--listen ${JSON.stringify(text)}: ${host} is no IPv4 address (an IPv6 address goes in brackets; the only name taken is localhost)`);
  const loopback = isLoopback(host);
  if (!loopback && !allowRemote) {
    throw new UserError(`--listen ${text}: ${host} is not a loopback address, and the UI has no authentication: anyone who reaches the port sees the cluster. Add --allow-remote to serve it there anyway`);
  }
  return { host, port, loopback };
}

/** The URL to open for an address the server is bound to. */
export function listenUrl(host: string, port: number): string {
  const h = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
  return `http://${isIP(h) === 6 ? `[${h}]` : h}:${port}/`;
}

/**
 * Whether a request's Host header names this server — a page served from another origin that a
 * DNS name points at 127.0.0.1 (DNS rebinding) sends its own name and is refused.
 */
export function hostAllowed(header: string | undefined, bound: { host: string; port: number }): boolean {
  if (header === undefined) return false;
  const names = new Set([`localhost:${bound.port}`, `127.0.0.1:${bound.port}`, `[::1]:${bound.port}`, `${isIP(bound.host) === 6 ? `[${bound.host}]` : bound.host}:${bound.port}`]);
  return names.has(header.toLowerCase());
}
