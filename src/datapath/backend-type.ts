/** The backends there are (pure): each has one entry in backend.ts's registry. */
export type BackendType = 'vxlan' | 'host-gw';
export const BACKENDS: readonly BackendType[] = ['vxlan', 'host-gw'];

/** A backend's settings as the cluster network holds them. */
export interface BackendSettings {
  type: BackendType;
  vni?: number;
  port?: number;
}

/** Encryption between nodes, as the cluster network holds it (absent: none). */
export interface EncryptionSettings {
  type: 'wireguard';
  /** The UDP port every node's WireGuard device listens on. */
  port: number;
}
export const ENCRYPTIONS = ['none', 'wireguard'] as const;
export type EncryptionType = (typeof ENCRYPTIONS)[number];
export const DEFAULT_WIREGUARD_PORT = 51820;

/**
 * What carries pod traffic between nodes: the backend's own encapsulation or routes, or, with
 * encryption on, WireGuard in its place (WireGuard already is a UDP overlay: a second
 * encapsulation would cost MTU and carry nothing Weft's address-based policy needs).
 */
export type TransportType = BackendType | 'wireguard';

export function transportOf(spec: { backend: BackendSettings; encryption?: EncryptionSettings | undefined }): TransportType {
  return spec.encryption?.type === 'wireguard' ? 'wireguard' : spec.backend.type;
}
