/**
 * The policies the flow, UI and record tests share: x/b takes TCP 80 only from app=c (so x/a is
 * blocked and x/c allowed), and a WeftClusterPolicy denies TCP 23 to every pod.
 */
export const B_FROM_C = `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: b-from-c, namespace: x}
spec:
  podSelector: {matchLabels: {app: b}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: c}}}]
    ports: [{port: 80, protocol: TCP}]
`;

export const NO_TELNET = `
apiVersion: weft.io/v1
kind: WeftClusterPolicy
metadata: {name: no-telnet}
spec:
  priority: 10
  subject: {namespaces: {}}
  ingress:
  - name: telnet
    action: Deny
    from: [{namespaces: {}}]
    ports: [{portNumber: {port: 23}}]
`;
