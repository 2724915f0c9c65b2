import { after, before, describe } from 'node:test';
import { etcdctl, etcdMissing, startEtcd, stopEtcd, type EtcdServer } from '../../test/helpers/etcd.js';
import { EtcdStore } from './etcd-store.js';
import { runStoreContract } from './store.contract.js';

/** The same contract on a real etcd (Debian's etcd-server on loopback ports). */
describe('EtcdStore (contract, real etcd)', { skip: etcdMissing() }, () => {
  let etcd: EtcdServer | undefined;
  before(async () => {
    etcd = await startEtcd();
  });
  after(async () => {
    await stopEtcd(etcd);
  });
  runStoreContract({
    async open() {
      const server = etcd as EtcdServer;
      etcdctl(server, ['del', '--prefix', '/weft/']);
      const a = await EtcdStore.connect([server.endpoint]);
      const b = await EtcdStore.connect([server.endpoint]);
      return {
        a,
        b,
        cleanup: async () => {
          await a.close();
          await b.close();
        },
      };
    },
    async compact(_stores, revision) {
      etcdctl(etcd as EtcdServer, ['compact', String(revision)]);
    },
    async putRaw(_stores, kind, name, namespace, bytes) {
      etcdctl(etcd as EtcdServer, ['put', `/weft/v1/${kind}/${namespace ?? '_'}/${name}`, '--', bytes]);
    },
    rawWritesAreEvents: true,
  });
});
