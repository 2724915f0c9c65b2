/**
 * Kubernetes' name rules (apimachinery's IsDNS1123Label / IsDNS1123Subdomain), pure: one copy for
 * the CNI layer (K8S_POD_NAME and friends), the agent's API and object admission.
 */
const LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Namespace names, Service names: at most 63 of a-z, 0-9 and "-", alphanumeric at both ends. */
export function dnsLabelProblem(s: string): string | undefined {
  if (typeof s !== 'string') return 'must be a string';
  if (s.length > 63) return 'must be no more than 63 characters';
  if (!LABEL.test(s)) return "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name', or '123-abc')";
  return undefined;
}

/** Most object names (Pods, Nodes, policies): dot-separated labels, at most 253 characters. */
export function dnsSubdomainProblem(s: string): string | undefined {
  if (typeof s !== 'string') return 'must be a string';
  if (s.length > 253) return 'must be no more than 253 characters';
  if (!SUBDOMAIN.test(s)) return "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com')";
  return undefined;
}

export const isDnsLabel = (s: string): boolean => dnsLabelProblem(s) === undefined;
export const isDnsSubdomain = (s: string): boolean => dnsSubdomainProblem(s) === undefined;
