/** The backends there are (pure): each has one entry in backend.ts's registry. */
export type BackendType = 'vxlan' | 'host-gw';
export const BACKENDS: readonly BackendType[] = ['vxlan', 'host-gw'];

/** A backend's settings as the cluster network holds them. */
export interface BackendSettings {
  type: BackendType;
  vni?: number;
  port?: number;
}
