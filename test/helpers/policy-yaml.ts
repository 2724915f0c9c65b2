/** Policy manifests for tests, from a spec written as indented YAML lines. */
const indent = (spec: string): string =>
  spec
    .trim()
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n');

/** A NetworkPolicy document (with its `---`). */
export const npYaml = (namespace: string, name: string, spec: string): string => `---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: ${name}, namespace: ${namespace}}
spec:
${indent(spec)}
`;

/** A WeftClusterPolicy document (with its `---`). */
export const wcpYaml = (name: string, spec: string): string => `---
apiVersion: weft.io/v1
kind: WeftClusterPolicy
metadata: {name: ${name}}
spec:
${indent(spec)}
`;
