import { CniError, ErrorCode } from './errors.js';

/** The spec version Weft implements; VERSION replies with it. */
export const IMPLEMENTED_VERSION = '1.1.0';

/** Every config version the plugin accepts, oldest first. */
export const SUPPORTED_VERSIONS: readonly string[] = [
  '0.1.0',
  '0.2.0',
  '0.3.0',
  '0.3.1',
  '0.4.0',
  '1.0.0',
  '1.1.0',
];

/** What the libraries assume when a config or result has no cniVersion. */
export const DEFAULT_VERSION_WHEN_ABSENT = '0.1.0';

const SEMVER = /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$/;

export function parseSemver(v: string): [number, number, number] | undefined {
  const m = SEMVER.exec(v);
  if (!m) return undefined;
  return [Number(m[1]), Number(m[2]), Number(m[3])];
}

/** Compares two semver strings; an unparsable version sorts below every valid one. */
export function compareVersions(a: string, b: string): number {
  const pa = parseSemver(a);
  const pb = parseSemver(b);
  if (!pa || !pb) return pa ? 1 : pb ? -1 : 0;
  for (let i = 0; i < 3; i++) {
    const d = (pa[i] as number) - (pb[i] as number);
    if (d !== 0) return d;
  }
  return 0;
}

export function versionAtLeast(v: string, min: string): boolean {
  return compareVersions(v, min) >= 0;
}

/**
 * Result schemas come in three families: 0.1.0/0.2.0 (ip4/ip6), 0.3.x/0.4.0 (ips with
 * "version"), and 1.x (ips without "version", optional 1.1 fields).
 */
export type ResultFamily = 'legacy' | 'v04' | 'v1';

export function resultFamily(v: string): ResultFamily {
  if (versionAtLeast(v, '1.0.0')) return 'v1';
  if (versionAtLeast(v, '0.3.0')) return 'v04';
  return 'legacy';
}

export function isSupportedVersion(v: string): boolean {
  return SUPPORTED_VERSIONS.includes(v);
}

export function assertSupportedVersion(v: string): void {
  if (!isSupportedVersion(v)) {
    throw new CniError(
      ErrorCode.IncompatibleVersion,
      'incompatible CNI versions',
      `config is "${v}", plugin supports [${SUPPORTED_VERSIONS.map((s) => `"${s}"`).join(' ')}]`,
    );
  }
}

/** The minimum config version for each command that needs one (the spec's version gate). */
export const MIN_VERSION_FOR_COMMAND: Readonly<Record<string, string>> = {
  CHECK: '0.4.0',
  GC: '1.1.0',
  STATUS: '1.1.0',
};

export function assertVersionAllowsCommand(command: string, v: string): void {
  const min = MIN_VERSION_FOR_COMMAND[command];
  if (min !== undefined && !versionAtLeast(v, min)) {
    throw new CniError(
      ErrorCode.IncompatibleVersion,
      `config version does not allow ${command}`,
      `${command} needs cniVersion ${min} or newer; the config says "${v}"`,
    );
  }
}
