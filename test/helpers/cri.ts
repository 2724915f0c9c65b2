import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { join } from 'node:path';
import { ROOT } from './env.js';

/**
 * A small client of the CRI runtime.v1 RuntimeService (the sandbox calls kubelet makes), over
 * containerd's CRI socket. Typed only as far as the tests read the answers.
 */
export interface PodSandboxStatus {
  id: string;
  state: 'SANDBOX_READY' | 'SANDBOX_NOTREADY';
  network?: { ip: string; additional_ips: Array<{ ip: string }> };
  metadata?: { name: string; namespace: string; uid: string };
}

export interface SandboxConfig {
  name: string;
  namespace: string;
  uid: string;
  portMappings?: Array<{ protocol: 'TCP' | 'UDP'; container_port: number; host_port: number }>;
  annotations?: Record<string, string>;
}

type Unary<Req, Res> = (req: Req, cb: (err: grpc.ServiceError | null, res: Res) => void) => void;

interface RuntimeServiceClient extends grpc.Client {
  Version: Unary<{ version: string }, { runtime_name: string; runtime_version: string; runtime_api_version: string }>;
  RunPodSandbox: Unary<{ config: unknown; runtime_handler: string }, { pod_sandbox_id: string }>;
  StopPodSandbox: Unary<{ pod_sandbox_id: string }, object>;
  RemovePodSandbox: Unary<{ pod_sandbox_id: string }, object>;
  PodSandboxStatus: Unary<{ pod_sandbox_id: string; verbose: boolean }, { status: PodSandboxStatus; info: Record<string, string> }>;
}

function call<Req, Res>(fn: Unary<Req, Res>, client: grpc.Client, req: Req, timeoutMs = 60_000): Promise<Res> {
  return new Promise((resolve, reject) => {
    const deadline = new Date(Date.now() + timeoutMs);
    (fn as unknown as (r: Req, m: grpc.Metadata, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r: Res) => void) => void).call(
      client,
      req,
      new grpc.Metadata(),
      { deadline },
      (err, res) => (err ? reject(err) : resolve(res)),
    );
  });
}

export class CriClient {
  private readonly client: RuntimeServiceClient;

  constructor(socket: string) {
    const def = protoLoader.loadSync(join(ROOT, 'test', 'helpers', 'cri-runtime-v1.proto'), { keepCase: true, enums: String, defaults: true, longs: String });
    const pkg = grpc.loadPackageDefinition(def) as unknown as { runtime: { v1: { RuntimeService: new (addr: string, creds: grpc.ChannelCredentials) => RuntimeServiceClient } } };
    this.client = new pkg.runtime.v1.RuntimeService(`unix://${socket}`, grpc.credentials.createInsecure());
  }

  version(): Promise<{ runtime_name: string; runtime_version: string; runtime_api_version: string }> {
    return call(this.client.Version, this.client, { version: 'v1' });
  }

  async runPodSandbox(c: SandboxConfig): Promise<string> {
    const config = {
      metadata: { name: c.name, namespace: c.namespace, uid: c.uid, attempt: 0 },
      hostname: c.name,
      log_directory: '',
      port_mappings: c.portMappings ?? [],
      labels: { app: c.name },
      annotations: c.annotations ?? {},
      linux: { cgroup_parent: '', security_context: { namespace_options: { network: 'POD', pid: 'CONTAINER', ipc: 'POD' } } },
    };
    const r = await call(this.client.RunPodSandbox, this.client, { config, runtime_handler: '' }, 120_000);
    return r.pod_sandbox_id;
  }

  status(id: string, verbose = false): Promise<{ status: PodSandboxStatus; info: Record<string, string> }> {
    return call(this.client.PodSandboxStatus, this.client, { pod_sandbox_id: id, verbose });
  }

  async stop(id: string): Promise<void> {
    await call(this.client.StopPodSandbox, this.client, { pod_sandbox_id: id }, 120_000);
  }

  async remove(id: string): Promise<void> {
    await call(this.client.RemovePodSandbox, this.client, { pod_sandbox_id: id }, 120_000);
  }

  close(): void {
    this.client.close();
  }
}

/** The sandbox's network namespace path, from the verbose status (containerd's runtime spec). */
export function sandboxNetnsPath(info: Record<string, string>): string | undefined {
  const raw = info['info'];
  if (!raw) return undefined;
  const parsed = JSON.parse(raw) as { runtimeSpec?: { linux?: { namespaces?: Array<{ type: string; path?: string }> } } };
  return parsed.runtimeSpec?.linux?.namespaces?.find((n) => n.type === 'network')?.path;
}
