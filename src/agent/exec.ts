import { convertResult } from '../cni/convert.js';
import { asCniError, CniError, ErrorCode } from '../cni/errors.js';
import type { Result } from '../cni/result.js';
import { IMPLEMENTED_VERSION, SUPPORTED_VERSIONS } from '../cni/version.js';
import { parseCniRequest, STDIN_LIMIT_BYTES, type CniRequest } from './api.js';
import { FILE_ID } from '../kernel/netns.js';
import { parseInvocation } from './invocation.js';

/**
 * One plugin execution, carried whole by the forwarder (native/weft-cni.c) and run here, in the
 * agent: the environment and stdin through the CNI protocol layer, the request (checked once
 * more, as any request to the service is) through the CNI service, and the answer as the plugin
 * prints it — stdout, exit status 0 or 1, the reference skel's contract. The forwarder answers
 * the about banner and VERSION itself; a caller that asks here anyway gets the same answers.
 */
export interface Execution {
  env: Record<string, string>;
  stdin: Buffer;
  /** The forwarder's pid, and the fd it holds the pod's netns open as, or why it could not. */
  pid?: number;
  netnsFd?: number;
  /** "DEV:INO" of the file the forwarder holds open. */
  netnsFile?: string;
  netnsErrno?: string;
}

export interface ExecOutput {
  stdout: string;
  stderr: string;
  exitCode: number;
  /** What failed, for the agent's log (the caller sees it on stdout). */
  error?: CniError;
  command?: string;
}

/** The variables a plugin reads; nothing else of the runtime's environment is carried. */
export const FORWARDED_ENV = ['CNI_COMMAND', 'CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_ARGS', 'CNI_PATH'] as const;

export const ABOUT = `CNI weft plugin\nCNI protocol versions supported: ${SUPPORTED_VERSIONS.join(', ')}\n`;
export const VERSION_REPLY = JSON.stringify({ cniVersion: IMPLEMENTED_VERSION, supportedVersions: SUPPORTED_VERSIONS });

function bad(msg: string): never {
  throw new CniError(ErrorCode.DecodingFailure, `invalid request from the plugin: ${msg}`);
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

function decode(v: unknown, what: string, limit: number): Buffer {
  if (typeof v !== 'string' || v.length % 4 !== 0 || !BASE64.test(v) || v.length > Math.ceil(limit / 3) * 4) bad(`${what} must be base64 of at most ${limit} bytes`);
  return Buffer.from(v, 'base64');
}

/** Checks and decodes an execution as the forwarder sends it. */
export function parseExecution(body: unknown): Execution {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) bad('the body must be a JSON object');
  const o = body as Record<string, unknown>;
  const envIn = o['env'];
  if (typeof envIn !== 'object' || envIn === null || Array.isArray(envIn)) bad('"env" must be an object');
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(envIn)) {
    if (!(FORWARDED_ENV as readonly string[]).includes(k)) bad(`"env" may hold only ${FORWARDED_ENV.join(', ')}`);
    env[k] = decode(v, `env.${k}`, 64 * 1024).toString('utf8');
  }
  const out: Execution = { env, stdin: decode(o['stdin'] ?? '', 'stdin', STDIN_LIMIT_BYTES) };
  const int = (k: string, min: number, max: number): number | undefined => {
    const v = o[k];
    if (v === undefined) return undefined;
    if (!Number.isInteger(v) || (v as number) < min || (v as number) > max) bad(`"${k}" must be an integer ${min}-${max}`);
    return v as number;
  };
  const pid = int('pid', 1, 2 ** 22);
  const fd = int('netnsFd', 0, 1 << 20);
  if (pid !== undefined) out.pid = pid;
  if (fd !== undefined) {
    if (pid === undefined) bad('"netnsFd" comes with the "pid" that holds it');
    out.netnsFd = fd;
  }
  const file = o['netnsFile'];
  if (file !== undefined || fd !== undefined) {
    if (typeof file !== 'string' || !FILE_ID.test(file)) bad('"netnsFile" must be "DEV:INO" and comes with "netnsFd"');
    out.netnsFile = file;
  }
  const errno = o['netnsErrno'];
  if (errno !== undefined) {
    if (typeof errno !== 'string' || !/^E[A-Z]{1,15}$/.test(errno)) bad('"netnsErrno" must be an errno name such as ENOENT');
    out.netnsErrno = errno;
  }
  return out;
}

/** Runs one execution; `handle` is the CNI service. Never throws: a failure is a CNI error object. */
export async function runExecution(ex: Execution, handle: (r: CniRequest) => Promise<Result | undefined>): Promise<ExecOutput> {
  let cniVersion: string | undefined;
  try {
    const inv = await parseInvocation(ex.env, () => Promise.resolve(ex.stdin));
    if (inv.kind === 'about') return { stdout: '', stderr: ABOUT, exitCode: 0 };
    if (inv.kind === 'version') return { stdout: VERSION_REPLY, stderr: '', exitCode: 0 };
    cniVersion = inv.conf.cniVersion;
    const request = parseCniRequest({
      ...inv.request,
      ...(ex.pid !== undefined && ex.netnsFd !== undefined && ex.netnsFile !== undefined ? { netnsFd: { pid: ex.pid, fd: ex.netnsFd, file: ex.netnsFile } } : {}),
      ...(ex.netnsErrno !== undefined ? { netnsErrno: ex.netnsErrno } : {}),
    });
    const result = await handle(request);
    if (request.command !== 'ADD') return { stdout: '', stderr: '', exitCode: 0 };
    if (!result) throw new Error('the CNI service returned no result for ADD');
    return { stdout: JSON.stringify(convertResult(result, cniVersion)), stderr: '', exitCode: 0 };
  } catch (err) {
    const error = asCniError(err);
    return { stdout: JSON.stringify(error.toObject(cniVersion)), stderr: '', exitCode: 1, error };
  }
}
