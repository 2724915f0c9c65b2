import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { CniError, ErrorCode, parseErrorObject } from '../cni/errors.js';
import { run } from '../kernel/exec.js';

/**
 * Executes one plugin the way a runtime does: found by type in CNI_PATH, parameters in the
 * environment, config on stdin, result or error object on stdout.
 */
export class PluginError extends CniError {
  constructor(
    readonly plugin: string,
    code: number,
    msg: string,
    details?: string,
  ) {
    super(code, msg, details);
    this.name = 'PluginError';
  }
}

export async function findPlugin(type: string, paths: readonly string[]): Promise<string> {
  for (const dir of paths) {
    const file = join(dir, type);
    try {
      const st = await fs.stat(file);
      if (st.isFile()) return file;
    } catch {
      /* not in this directory */
    }
  }
  throw new CniError(ErrorCode.Internal, `failed to find plugin "${type}" in path [${paths.join(' ')}]`);
}

export interface ExecEnv {
  command: string;
  containerId: string;
  netns: string;
  ifName: string;
  args: string;
  path: readonly string[];
}

export interface PluginOutput {
  /** Parsed stdout on success; undefined when the plugin printed nothing. */
  value: unknown;
  stderr: string;
}

/**
 * `netns`: run the plugin inside this network namespace, as a runtime on that node would
 * (the lab and the tests: their "node" is a netns, and chained plugins such as portmap change
 * the netns they run in).
 */
export async function execPlugin(file: string, type: string, env: ExecEnv, stdin: Buffer, timeoutMs = 120_000, netns?: string): Promise<PluginOutput> {
  const vars: NodeJS.ProcessEnv = {
    ...process.env,
    CNI_COMMAND: env.command,
    CNI_CONTAINERID: env.containerId,
    CNI_NETNS: env.netns,
    CNI_IFNAME: env.ifName,
    CNI_ARGS: env.args,
    CNI_PATH: env.path.join(':'),
  };
  const [cmd, args] = netns !== undefined ? ['nsenter', [`--net=${netns}`, '--', file]] : [file, []];
  const r = await run(cmd, args, { input: stdin, env: vars, timeoutMs, allowFailure: true });
  if (netns !== undefined && r.exitCode !== 0 && /^nsenter: /m.test(r.stderr)) {
    throw new PluginError(type, ErrorCode.Internal, `cannot run plugin ${type} in netns ${netns}: ${r.stderr.trim()}`);
  }
  const text = r.stdout.trim();
  if (r.exitCode !== 0) {
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = undefined;
    }
    const e = parseErrorObject(parsed);
    if (e) throw new PluginError(type, e.code, e.msg, e.details);
    const why = r.stderr.trim() || text || `exit status ${r.exitCode}`;
    throw new PluginError(type, ErrorCode.Internal, `plugin ${type} failed (${env.command}): ${why}`);
  }
  if (text === '' || text === 'null') return { value: undefined, stderr: r.stderr };
  try {
    return { value: JSON.parse(text) as unknown, stderr: r.stderr };
  } catch {
    throw new PluginError(type, ErrorCode.DecodingFailure, `plugin ${type} printed something that is not JSON: ${text.slice(0, 200)}`);
  }
}
