import type { Endpoint, NamespaceScope, Peer, Selector, Snapshot } from './ir.js';
import { namespaceLabels } from './ir.js';

/** Label selector matching (pure), with Kubernetes' meaning of each operator. */
export function matches(sel: Selector, labels: Record<string, string>): boolean {
  for (const [k, v] of Object.entries(sel.matchLabels)) if (labels[k] !== v) return false;
  for (const r of sel.matchExpressions) {
    const has = Object.prototype.hasOwnProperty.call(labels, r.key);
    const v = labels[r.key];
    switch (r.operator) {
      case 'In':
        if (!has || !r.values.includes(v as string)) return false;
        break;
      case 'NotIn':
        // A pod without the key is "not in" any set: NotIn matches it.
        if (has && r.values.includes(v as string)) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
    }
  }
  return true;
}

export function isEmptySelector(sel: Selector): boolean {
  return Object.keys(sel.matchLabels).length === 0 && sel.matchExpressions.length === 0;
}

/** A stable text for a selector (equal selectors, equal text): names shared nft sets. */
export function selectorKey(sel: Selector): string {
  const labels = Object.entries(sel.matchLabels)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`);
  const exprs = sel.matchExpressions
    .map((r) => `${r.key} ${r.operator}${r.values.length ? ` (${[...new Set(r.values)].sort().join(',')})` : ''}`)
    .sort();
  return [...labels, ...exprs].join(', ');
}

/** How a human reads a selector: "app=db, tier in (a,b)" or "all". */
export function describeSelector(sel: Selector): string {
  return isEmptySelector(sel) ? 'all' : selectorKey(sel);
}

export function inScope(s: Pick<Snapshot, 'namespaces'>, scope: NamespaceScope, ns: string): boolean {
  return 'own' in scope ? scope.own === ns : matches(scope.selector, namespaceLabels(s, ns));
}

/** Whether a pod peer selects this endpoint (ipBlock peers match by address, elsewhere). */
export function peerSelectsPod(s: Pick<Snapshot, 'namespaces'>, peer: Peer, ep: Pick<Endpoint, 'namespace' | 'labels'>): boolean {
  return peer.kind === 'pods' && inScope(s, peer.namespaces, ep.namespace) && matches(peer.pods, ep.labels);
}

export function peerKey(peer: Peer): string {
  if (peer.kind === 'ipBlock') return `ipBlock ${peer.cidr}${peer.except.length ? ` except ${[...peer.except].sort().join(',')}` : ''}`;
  const ns = 'own' in peer.namespaces ? `ns=${peer.namespaces.own}` : `ns{${selectorKey(peer.namespaces.selector)}}`;
  return `pods ${ns} {${selectorKey(peer.pods)}}`;
}

export function describePeer(peer: Peer): string {
  if (peer.kind === 'ipBlock') return `ipBlock ${peer.cidr}${peer.except.length ? ` except ${peer.except.join(', ')}` : ''}`;
  const pods = isEmptySelector(peer.pods) ? 'all pods' : `pods [${selectorKey(peer.pods)}]`;
  const ns = 'own' in peer.namespaces ? `namespace ${peer.namespaces.own}` : isEmptySelector(peer.namespaces.selector) ? 'all namespaces' : `namespaces [${selectorKey(peer.namespaces.selector)}]`;
  return `${pods} in ${ns}`;
}

export const emptySelector = (): Selector => ({ matchLabels: {}, matchExpressions: [] });
