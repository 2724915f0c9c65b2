import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { renderConflist } from './install.js';

const debian = ['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0'];

describe('renderConflist', () => {
  it('alone: 1.0.0 for older runtimes, 1.1.0 offered to newer ones', () => {
    const c = renderConflist({ name: 'weft', socket: '/run/weft/cni.sock', chain: [] });
    assert.equal(c['cniVersion'], '1.0.0');
    assert.deepEqual(c['cniVersions'], ['1.0.0', '1.1.0']);
    assert.deepEqual((c['plugins'] as unknown[])[0], { type: 'weft', socket: '/run/weft/cni.sock', capabilities: { ips: true, mac: true } });
  });

  it('chained with plugins that stop at 1.0.0: no 1.1.0 anywhere', () => {
    const c = renderConflist({
      name: 'weft',
      socket: '/s',
      mtu: 1400,
      chain: [
        { type: 'portmap', supportedVersions: debian },
        { type: 'bandwidth', supportedVersions: debian.slice(2) },
      ],
    });
    assert.equal(c['cniVersion'], '1.0.0');
    assert.equal('cniVersions' in c, false);
    assert.deepEqual((c['plugins'] as Array<{ type: string }>).map((p) => p.type), ['weft', 'portmap', 'bandwidth']);
    assert.equal((c['plugins'] as Array<{ mtu?: number }>)[0]?.mtu, 1400);
  });

  it('refuses a chain that shares no version', () => {
    assert.throws(() => renderConflist({ name: 'w', socket: '/s', chain: [{ type: 'odd', supportedVersions: ['9.0.0'] }] }), /share no CNI version/);
  });
});
