import { dnsLabelProblem, dnsSubdomainProblem } from '../util/dns-names.js';
import { CniError, ErrorCode } from './errors.js';

/** CNI_ARGS keys Weft understands. Kubernetes runtimes send the K8S_* ones with IgnoreUnknown=1. */
export const KNOWN_CNI_ARGS = [
  'IgnoreUnknown',
  'IP',
  'MAC',
  'K8S_POD_NAMESPACE',
  'K8S_POD_NAME',
  'K8S_POD_INFRA_CONTAINER_ID',
  'K8S_POD_UID',
] as const;

export interface CniArgs {
  /** Requested addresses (IP=, comma-separated as some runtimes send). */
  ips: string[];
  mac?: string;
  podNamespace?: string;
  podName?: string;
  podUid?: string;
  podInfraContainerId?: string;
  /** Every pair as given, known or not (used for diagnostics and labels). */
  raw: Record<string, string>;
}

/**
 * Parses `K1=V1;K2=V2`. A pair without exactly one "=" is an error, and so is an unknown key
 * unless IgnoreUnknown is 1/true — the reference types.LoadArgs rules, with code 4 because
 * CNI_ARGS is an environment variable.
 */
export function parseCniArgs(input: string): CniArgs {
  const raw: Record<string, string> = {};
  const out: CniArgs = { ips: [], raw };
  if (input === '') return out;
  const unknown: string[] = [];
  for (const part of input.split(';')) {
    if (part === '') continue; // a trailing ";" is harmless
    const kv = part.split('=');
    if (kv.length !== 2 || kv[0] === '') {
      throw new CniError(
        ErrorCode.InvalidEnvironment,
        `CNI_ARGS: invalid pair "${part}"`,
        'CNI_ARGS must be KEY=VALUE pairs separated by ";"',
      );
    }
    const key = kv[0] as string;
    const value = kv[1] as string;
    raw[key] = value;
    if (!(KNOWN_CNI_ARGS as readonly string[]).includes(key)) unknown.push(part);
  }
  const ignoreUnknown = /^(1|true)$/i.test(raw['IgnoreUnknown'] ?? '');
  if (unknown.length > 0 && !ignoreUnknown) {
    throw new CniError(
      ErrorCode.InvalidEnvironment,
      `CNI_ARGS: unknown args [${unknown.map((u) => JSON.stringify(u)).join(' ')}]`,
      `known keys: ${KNOWN_CNI_ARGS.join(', ')}; add IgnoreUnknown=1 to ignore others`,
    );
  }
  if (raw['IP'] !== undefined && raw['IP'] !== '') out.ips = raw['IP'].split(',').filter((s) => s !== '');
  if (raw['MAC'] !== undefined && raw['MAC'] !== '') out.mac = raw['MAC'];
  // Kubernetes names, or nothing: a runtime that is not Kubernetes (podman sends container names
  // such as "eager_turing") has no pod identity, and no other value ever names an object or a path.
  const ns = raw['K8S_POD_NAMESPACE'];
  const name = raw['K8S_POD_NAME'];
  if (ns && !dnsLabelProblem(ns)) out.podNamespace = ns;
  if (name && !dnsSubdomainProblem(name)) out.podName = name;
  if (raw['K8S_POD_UID'] && !podUidProblem(raw['K8S_POD_UID'])) out.podUid = raw['K8S_POD_UID'];
  if (raw['K8S_POD_INFRA_CONTAINER_ID']) out.podInfraContainerId = raw['K8S_POD_INFRA_CONTAINER_ID'];
  return out;
}

/** A Kubernetes UID: a UUID as the API server makes them (at most 128 of a-z, A-Z, 0-9, "-"). */
export function podUidProblem(s: string): string | undefined {
  return /^[A-Za-z0-9-]{1,128}$/.test(s) ? undefined : 'must be 1-128 of letters, digits and "-" (a UUID)';
}
