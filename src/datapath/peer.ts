/**
 * Another node as the backends see it: where to send (underlay addresses), what lies behind
 * it (its pod blocks), and what its backend publishes. Computed by cluster/peers.ts.
 */
export interface Peer {
  name: string;
  /** Underlay addresses, IPv4 first. */
  ips: string[];
  blocks: string[];
  vxlanMac: string | undefined;
  /** When its Node object was created (which node came first, where two claim one key). */
  createdAt?: string | undefined;
  /** Its WireGuard public key and endpoint (ip:port), where the cluster encrypts. */
  wireguard?: { publicKey: string; endpoint: string } | undefined;
  backend: string | undefined;
}
