import { CniError, ErrorCode } from './errors.js';

export const COMMANDS = ['ADD', 'DEL', 'CHECK', 'GC', 'STATUS', 'VERSION'] as const;
export type Command = (typeof COMMANDS)[number];

export function isCommand(s: string): s is Command {
  return (COMMANDS as readonly string[]).includes(s);
}

/** The per-call parameters a runtime passes in the environment. */
export interface CniEnv {
  command: Command;
  containerId: string;
  netns: string;
  ifName: string;
  /** Raw CNI_ARGS; parse with parseCniArgs. */
  args: string;
  path: string[];
}

type EnvVar = 'CNI_COMMAND' | 'CNI_CONTAINERID' | 'CNI_NETNS' | 'CNI_IFNAME' | 'CNI_ARGS' | 'CNI_PATH';

/**
 * Which commands require which variables. CNI_PATH follows the reference skel (required for
 * ADD/DEL/CHECK/GC, since runtimes always send it) except for STATUS, where the spec makes it
 * optional and nothing of ours needs it.
 */
const REQUIRED_BY: ReadonlyArray<[EnvVar, readonly Command[]]> = [
  ['CNI_CONTAINERID', ['ADD', 'DEL', 'CHECK']],
  ['CNI_NETNS', ['ADD', 'CHECK']],
  ['CNI_IFNAME', ['ADD', 'DEL', 'CHECK']],
  ['CNI_PATH', ['ADD', 'DEL', 'CHECK', 'GC']],
];

const CONTAINER_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/** libcni's container-id rule. */
export function validateContainerId(id: string): void {
  if (!CONTAINER_ID.test(id)) {
    throw new CniError(
      ErrorCode.InvalidEnvironment,
      'invalid characters in containerID',
      id,
    );
  }
}

/** libcni's interface-name rule: 1–15 bytes, not . or .., no /, : or whitespace. */
export function validateIfName(name: string): void {
  if (name === '') {
    throw new CniError(ErrorCode.InvalidEnvironment, 'interface name is empty');
  }
  if (Buffer.byteLength(name, 'utf8') > 15) {
    throw new CniError(
      ErrorCode.InvalidEnvironment,
      'interface name is too long',
      `interface name should be less than 16 characters, "${name}" has ${Buffer.byteLength(name, 'utf8')}`,
    );
  }
  if (name === '.' || name === '..') {
    throw new CniError(ErrorCode.InvalidEnvironment, 'interface name is . or ..');
  }
  if (/[/:\s]/.test(name)) {
    throw new CniError(
      ErrorCode.InvalidEnvironment,
      'interface name contains / or : or whitespace characters',
      name,
    );
  }
  // Beyond libcni's rule: iproute2's batch syntax ends a line at "#" and reads quotes.
  if (/[#"'\\\x00-\x1f\x7f]/.test(name)) {
    throw new CniError(ErrorCode.InvalidEnvironment, 'interface name contains #, a quote, a backslash or a control character', JSON.stringify(name));
  }
}

/** "set but empty" is exactly "unset", as libcni sets every variable it has no value for to "". */
function get(env: Readonly<Record<string, string | undefined>>, key: EnvVar): string {
  return env[key] ?? '';
}

/**
 * Reads and checks the environment in the reference skel's order: the command, then one error
 * listing every missing variable, then the syntax of what is present. Returns undefined when
 * CNI_COMMAND is absent (the caller prints the about banner, as the reference does).
 */
export function parseEnv(env: Readonly<Record<string, string | undefined>>): CniEnv | undefined {
  const command = get(env, 'CNI_COMMAND');
  if (command === '') return undefined;
  if (!isCommand(command)) {
    throw new CniError(
      ErrorCode.InvalidEnvironment,
      `unknown CNI_COMMAND: ${command}`,
      `accepted commands (case-sensitive): ${COMMANDS.join(', ')}`,
    );
  }
  const missing = REQUIRED_BY.filter(([key, cmds]) => cmds.includes(command) && get(env, key) === '').map(
    ([key]) => key,
  );
  if (missing.length > 0) {
    throw new CniError(ErrorCode.InvalidEnvironment, `required env variables [${missing.join(',')}] missing`);
  }
  const containerId = get(env, 'CNI_CONTAINERID');
  const ifName = get(env, 'CNI_IFNAME');
  const needsAttachment = command === 'ADD' || command === 'DEL' || command === 'CHECK';
  if (needsAttachment) {
    validateContainerId(containerId);
    validateIfName(ifName);
  }
  const path = get(env, 'CNI_PATH')
    .split(':')
    .filter((p) => p !== '');
  return {
    command,
    containerId,
    netns: get(env, 'CNI_NETNS'),
    ifName,
    args: get(env, 'CNI_ARGS'),
    path,
  };
}
