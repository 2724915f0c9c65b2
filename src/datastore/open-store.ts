/**
 * Opens the datastore the flags name (file, etcd, or the Kubernetes API), wrapped so that every object read from it
 * or written to it is admitted first. Whoever opens a store closes it: the agent's composition
 * root for an agent, the command for the CLI's one-shot commands.
 */
import { UserError } from '../util/user-error.js';
import { admitted } from './admitted-store.js';
import { EtcdStore } from './etcd-store.js';
import { FileStore } from './file-store.js';
import { findKubeConnection } from './kube-connection.js';
import { KubernetesStore } from './kubernetes-store.js';
import type { Store } from './store.js';

export interface DatastoreOptions {
  datastore?: string;
  datastoreDir?: string;
  etcdEndpoints?: string;
  /** --datastore kubernetes: a kubeconfig file (else KUBECONFIG, the pod's service account, ~/.kube/config). */
  kubeconfig?: string;
}

/** Checks the flags without connecting: a bad flag is reported before anything starts. */
export function checkDatastoreOptions(o: DatastoreOptions): void {
  if (o.datastore === 'file') {
    if (!o.datastoreDir) throw new UserError('--datastore file needs --datastore-dir DIR (a directory several agents may share)');
    return;
  }
  if (o.datastore === 'etcd') {
    etcdEndpoints(o);
    return;
  }
  if (o.datastore === 'kubernetes') {
    findKubeConnection(o.kubeconfig);
    return;
  }
  throw new UserError(`--datastore ${o.datastore}: expected file, etcd or kubernetes`);
}

function etcdEndpoints(o: DatastoreOptions): string[] {
  const eps = (o.etcdEndpoints ?? '').split(',').filter((e) => e !== '');
  if (eps.length === 0 || eps.some((e) => !/^(https?:\/\/[^/]+|unix:\/\/\/.+)$/.test(e))) {
    throw new UserError(`--datastore etcd needs --etcd-endpoints URL[,URL] such as http://10.0.0.1:2379 or unix:///run/etcd.sock:2379 (got ${JSON.stringify(o.etcdEndpoints ?? '')})`);
  }
  return eps;
}

export async function openStore(o: DatastoreOptions): Promise<Store> {
  checkDatastoreOptions(o);
  if (o.datastore === 'kubernetes') return admitted(new KubernetesStore(findKubeConnection(o.kubeconfig), 'weft-agent'));
  return admitted(o.datastore === 'file' ? FileStore.open(o.datastoreDir as string) : await EtcdStore.connect(etcdEndpoints(o)));
}
