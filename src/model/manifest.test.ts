import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseManifests } from './manifest.js';

describe('manifests (pure)', () => {
  it('reads several YAML documents and Lists; namespaces its objects; labels namespaces as Kubernetes does', () => {
    const objs = parseManifests(
      `apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: List
items:
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: deny}
  spec: {podSelector: {}}
`,
      'f.yaml',
    );
    assert.deepEqual(objs.map((o) => `${o.kind}/${o.metadata.namespace ?? '-'}/${o.metadata.name}`), ['Namespace/-/shop', 'NetworkPolicy/default/deny']);
    assert.deepEqual(objs[0]?.metadata.labels, { 'kubernetes.io/metadata.name': 'shop' });
  });

  it('reads JSON too', () => {
    assert.equal(parseManifests('{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"x"}}', 'f.json')[0]?.metadata.name, 'x');
  });

  it('refuses with the place and what is accepted', () => {
    assert.throws(() => parseManifests('kind: Namespace\nmetadata: {name: a}\n', 'f.yaml'), /f\.yaml: apiVersion is required/);
    assert.throws(() => parseManifests('apiVersion: v1\nkind: Namespace\nmetadata: {name: Bad_Name}\n', 'f.yaml'), /The Namespace "Bad_Name" is invalid: metadata\.name: Invalid value: "Bad_Name": a lowercase RFC 1123 label/);
    assert.throws(() => parseManifests('apiVersion: v1\nkind: Namespace\nmetadata: {name: a, namespace: b}\n', 'f.yaml'), /metadata\.namespace: Forbidden: not allowed on this type: a Namespace is cluster-scoped/);
    assert.throws(() => parseManifests('a: [1,\n', 'f.yaml'), /not valid YAML/);
    assert.throws(() => parseManifests('---\n', 'f.yaml'), /no objects/);
    assert.throws(() => parseManifests('apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\napiVersion: v1\n', 'f.yaml'), /document 2/);
  });
});
