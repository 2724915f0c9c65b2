import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { rmSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';

/**
 * What runs inside each lab pod's netns: a server on the pod's declared ports that answers with
 * who it is and who asked (so masquerade is visible), and a control socket through which the
 * lab asks it to probe other addresses — from inside this netns, with no process per probe.
 */
export type Protocol = 'TCP' | 'UDP' | 'SCTP';

export interface PortSpec {
  name?: string;
  port: number;
  protocol: Protocol;
}

export interface ProbeRequest {
  host: string;
  port: number;
  protocol: Protocol;
  timeoutMs: number;
}

export interface ProbeResult {
  ok: boolean;
  ms: number;
  /** What the server answered: "<identity> <caller address>". */
  reply?: string;
  error?: string;
}

function answer(identity: string, peer: string | undefined): string {
  return `${identity} ${(peer ?? '?').replace(/^::ffff:/, '')}\n`;
}

export function probe(req: ProbeRequest): Promise<ProbeResult> {
  const t0 = performance.now();
  const done = (ok: boolean, extra: { reply?: string; error?: string }): ProbeResult => ({ ok, ms: Math.round((performance.now() - t0) * 100) / 100, ...extra });
  if (req.protocol === 'TCP') {
    return new Promise((resolve) => {
      const s = connect({ host: req.host, port: req.port });
      let data = '';
      const timer = setTimeout(() => {
        s.destroy();
        resolve(done(false, { error: 'timeout' }));
      }, req.timeoutMs);
      s.on('data', (d: Buffer) => (data += d.toString()));
      s.on('end', () => {
        clearTimeout(timer);
        resolve(done(true, { reply: data.trim() }));
      });
      s.on('error', (e: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        resolve(done(false, { error: e.code ?? e.message }));
      });
    });
  }
  if (req.protocol === 'UDP') {
    return new Promise((resolve) => {
      const s = createSocket(req.host.includes(':') ? 'udp6' : 'udp4');
      const finish = (r: ProbeResult): void => {
        clearTimeout(timer);
        s.close();
        resolve(r);
      };
      const timer = setTimeout(() => finish(done(false, { error: 'timeout' })), req.timeoutMs);
      s.on('message', (m) => finish(done(true, { reply: m.toString().trim() })));
      s.on('error', (e: NodeJS.ErrnoException) => finish(done(false, { error: e.code ?? e.message })));
      // Connected, so an ICMP port-unreachable comes back as ECONNREFUSED ("nothing listens"),
      // told apart from a drop (no answer at all).
      s.connect(req.port, req.host, () => s.send('probe'));
    });
  }
  return Promise.resolve(done(false, { error: 'SCTP sockets are not available on this kernel' }));
}

export interface PodServerOptions {
  identity: string;
  ports: PortSpec[];
  control: string;
}

/** Runs until the process is signalled. */
export async function runPodServer(o: PodServerOptions): Promise<{ close(): Promise<void> }> {
  const closers: Array<() => void> = [];
  for (const p of o.ports) {
    if (p.protocol === 'TCP') {
      const srv: Server = createServer((s: Socket) => {
        // A client that resets the connection must not take the pod's server down with it.
        s.on('error', () => undefined);
        s.end(answer(o.identity, s.remoteAddress));
      });
      await new Promise<void>((resolve, reject) => {
        srv.once('error', reject);
        srv.listen({ port: p.port, host: '::', ipv6Only: false }, () => resolve());
      });
      closers.push(() => srv.close());
    } else if (p.protocol === 'UDP') {
      for (const type of ['udp4', 'udp6'] as const) {
        const s: UdpSocket = createSocket({ type, ipv6Only: type === 'udp6' });
        s.on('message', (_m, rinfo) => s.send(answer(o.identity, rinfo.address), rinfo.port, rinfo.address));
        await new Promise<void>((resolve, reject) => {
          s.once('error', reject);
          s.bind(p.port, type === 'udp4' ? '0.0.0.0' : '::', () => resolve());
        });
        closers.push(() => s.close());
      }
    }
    // SCTP: the kernel here has no SCTP sockets; the port is declared, nothing listens.
  }
  rmSync(o.control, { force: true });
  const control = createServer((s) => {
    let buf = '';
    s.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        let req: ProbeRequest & { id: number };
        try {
          req = JSON.parse(line) as ProbeRequest & { id: number };
        } catch {
          continue;
        }
        // Probes run concurrently and finish in any order: the id pairs answers with requests.
        void probe(req).then((r) => s.write(JSON.stringify({ id: req.id, ...r }) + '\n'));
      }
    });
    s.on('error', () => undefined);
  });
  await new Promise<void>((resolve, reject) => {
    control.once('error', reject);
    control.listen(o.control, () => resolve());
  });
  closers.push(() => control.close());
  return {
    close: async () => {
      for (const c of closers) c();
      rmSync(o.control, { force: true });
    },
  };
}

/** Asks the pod behind `control` to probe; one connection, any number of requests. */
export class ProbeClient {
  private socket: Socket | undefined;
  private connecting: Promise<Socket> | undefined;
  private buf = '';
  private nextId = 0;
  private readonly waiting = new Map<number, (r: ProbeResult) => void>();

  constructor(private readonly control: string) {}

  /** One connection per client, however many probes start before it is up. */
  private open(): Promise<Socket> {
    this.connecting ??= this.connect();
    return this.connecting;
  }

  private async connect(): Promise<Socket> {
    const s = connect(this.control);
    await new Promise<void>((resolve, reject) => {
      s.once('connect', () => resolve());
      s.once('error', reject);
    });
    this.socket = s;
    s.on('data', (d: Buffer) => {
      this.buf += d.toString();
      let nl: number;
      while ((nl = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, nl);
        this.buf = this.buf.slice(nl + 1);
        const { id, ...result } = JSON.parse(line) as ProbeResult & { id: number };
        this.waiting.get(id)?.(result);
        this.waiting.delete(id);
      }
    });
    const fail = (): void => {
      for (const w of this.waiting.values()) w({ ok: false, ms: 0, error: 'the pod server went away' });
      this.waiting.clear();
    };
    s.on('error', fail);
    s.on('close', fail);
    return s;
  }

  /** Any number of probes at once over one connection; they run concurrently in the pod. */
  async probe(req: ProbeRequest): Promise<ProbeResult> {
    const s = await this.open();
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.waiting.set(id, resolve);
      s.write(JSON.stringify({ id, ...req }) + '\n');
    });
  }

  close(): void {
    this.socket?.destroy();
    this.socket = undefined;
    void this.connecting?.then((s) => s.destroy(), () => undefined);
    this.connecting = undefined;
  }
}
