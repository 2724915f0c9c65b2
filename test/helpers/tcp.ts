import { spawn, spawnSync, type ChildProcess } from 'node:child_process';

/**
 * A tiny TCP server inside a pod netns, and a client inside another netns: real connections
 * between namespaces the test made, never anywhere else.
 */
export async function startTcpServer(netns: string, port: number, reply: string): Promise<ChildProcess> {
  const code = `require('net').createServer((s)=>{s.end(${JSON.stringify(reply)});}).listen(${port},'::',()=>console.log('ready'));`;
  const child = spawn('ip', ['netns', 'exec', netns, process.execPath, '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout?.once('data', () => resolve());
    child.once('exit', (c) => reject(new Error(`server in ${netns} exited with ${c}`)));
  });
  return child;
}

export function stopServer(child: ChildProcess | undefined): void {
  if (child && child.exitCode === null) child.kill('SIGKILL');
}

/** Connects from `netns` to host:port and returns what the server sent ('' on failure). */
export function tcpRequest(netns: string, host: string, port: number): string {
  const code = `const s=require('net').connect(${port},${JSON.stringify(host)});let d='';s.setTimeout(3000,()=>process.exit(2));s.on('data',(c)=>d+=c);s.on('end',()=>{process.stdout.write(d);process.exit(0)});s.on('error',()=>process.exit(1));`;
  const r = spawnSync('ip', ['netns', 'exec', netns, process.execPath, '-e', code], { encoding: 'utf8', timeout: 10_000 });
  return r.status === 0 ? r.stdout : '';
}

/**
 * Sends one UDP datagram from `netns`, from a fixed source port (so two calls are one
 * conntrack "connection"), and returns the reply ('' when none came within 1.5 s).
 */
export function udpFromPort(netns: string, host: string, port: number, sport: number): string {
  const code = `const s=require('dgram').createSocket(${JSON.stringify(host.includes(':') ? 'udp6' : 'udp4')});s.bind(${sport},()=>{s.send('x',${port},${JSON.stringify(host)});});s.on('message',(m)=>{process.stdout.write(m.toString());process.exit(0)});setTimeout(()=>process.exit(2),1500);`;
  const r = spawnSync('ip', ['netns', 'exec', netns, process.execPath, '-e', code], { encoding: 'utf8', timeout: 10_000 });
  return r.status === 0 ? r.stdout : '';
}
