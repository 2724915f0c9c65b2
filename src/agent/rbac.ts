/**
 * What a node agent does with each kind on the Kubernetes API: the least privilege its
 * ServiceAccount needs (deploy/weft.yaml grants exactly this; test/deploy.test.ts holds the two
 * together). Change it with the code that needs it. "Kind/status" is the kind's status subresource.
 */
export type Verb = 'get' | 'list' | 'watch' | 'create' | 'update' | 'patch' | 'delete';

const READ: readonly Verb[] = ['get', 'list', 'watch'];

export const AGENT_ACCESS: Readonly<Record<string, readonly Verb[]>> = {
  /** Informers. Never created, changed or deleted. */
  Node: READ,
  /** Its own Node's annotations, by merge patch through the status subresource (membership): never its spec. */
  'Node/status': ['patch'],
  /** Informers (policy), and the Pod of an ADD looked up directly. */
  Pod: READ,
  /** Its pods' weft.io/pod-ips, by merge patch through the status subresource (endpoints): never their spec. */
  'Pod/status': ['patch'],
  Namespace: READ,
  NetworkPolicy: READ,
  WeftClusterPolicy: READ,
  /** The first agent writes it from its flags (ensureClusterNetwork). */
  ClusterNetwork: [...READ, 'create'],
  /** Leased, taken over from a gone node, freed on leave (cluster-pool IPAM). */
  IPBlock: [...READ, 'create', 'update', 'delete'],
  /** This node's pods, published by the endpoints controller; forgotten on leave. */
  WeftEndpoint: [...READ, 'create', 'update', 'delete'],
  /** Its own lease in weft-system (renewLease), deleted on leave. */
  Lease: [...READ, 'create', 'update', 'delete'],
};
