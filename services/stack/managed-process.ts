import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { createServer, connect } from 'node:net';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

const TETHER = fileURLToPath(new URL('./tether.sh', import.meta.url));
const RECENT_LINES = 60;

/** Processes still running, stopped on exit even when the owner forgets or crashes. */
const running = new Set<ManagedProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const proc of running) proc.kill('SIGTERM');
  });
}

export interface ManagedProcessOptions {
  /** Short name for messages and logs, e.g. "nats-server". */
  name: string;
  command: string;
  args: string[];
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Output (stdout and stderr) is appended here as well as kept in memory. */
  logFile?: string;
}

/**
 * A server or worker run as a child process in its own process group, tethered to this process
 * (services/stack/tether.sh) so that it stops when we die, however we die.
 */
export class ManagedProcess {
  readonly name: string;
  readonly exited: Promise<number | null>;
  private readonly child: ChildProcess;
  private readonly recent: string[] = [];
  private readonly waiters = new Set<(line: string) => void>();
  private readonly log: WriteStream | undefined;
  private exitCode: number | null | undefined;

  constructor(options: ManagedProcessOptions) {
    installExitHook();
    this.name = options.name;
    this.log = options.logFile ? createWriteStream(options.logFile, { flags: 'a' }) : undefined;
    this.child = spawn('bash', [TETHER, String(process.pid), options.command, ...options.args], {
      cwd: options.cwd,
      env: options.env ?? process.env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    running.add(this);
    this.exited = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => {
        this.exitCode = code ?? (signal ? null : 0);
        running.delete(this);
        this.log?.end();
        resolve(this.exitCode);
      });
      this.child.on('error', (err) => {
        this.onLine(`failed to start ${options.command}: ${err.message}`);
      });
    });
    for (const stream of [this.child.stdout, this.child.stderr]) {
      let partial = '';
      stream?.setEncoding('utf8');
      stream?.on('data', (chunk: string) => {
        this.log?.write(chunk);
        const lines = (partial + chunk).split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines) this.onLine(line);
      });
    }
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get isRunning(): boolean {
    return this.exitCode === undefined;
  }

  /** The last lines the process printed, for error messages. */
  recentOutput(): string {
    return this.recent.join('\n');
  }

  /** Resolves with the first output line matching `pattern` (including lines already seen). */
  async waitForLine(pattern: RegExp, timeoutMs: number): Promise<RegExpMatchArray> {
    for (const line of this.recent) {
      const match = line.match(pattern);
      if (match) return match;
    }
    let onLine: ((line: string) => void) | undefined;
    let timer: NodeJS.Timeout | undefined;
    try {
      return await new Promise<RegExpMatchArray>((resolve, reject) => {
        onLine = (line) => {
          const match = line.match(pattern);
          if (match) resolve(match);
        };
        this.waiters.add(onLine);
        timer = setTimeout(
          () => reject(this.failure(`did not print ${pattern} within ${timeoutMs} ms`)),
          timeoutMs,
        );
        this.exited.then(
          (code) => reject(this.failure(`exited (code ${code}) before it was ready`)),
          reject,
        );
      });
    } finally {
      if (onLine) this.waiters.delete(onLine);
      clearTimeout(timer);
    }
  }

  /** An error that names the process and shows what it printed last. */
  failure(what: string): Error {
    const output = this.recentOutput();
    return new Error(`${this.name} ${what}${output ? `. Its last output:\n${output}` : ''}`);
  }

  /** Sends `signal` to the whole process group (the tether and the program). */
  kill(signal: NodeJS.Signals): void {
    if (!this.isRunning || this.child.pid === undefined) return;
    try {
      process.kill(-this.child.pid, signal);
    } catch {
      // Already gone.
    }
  }

  /** SIGTERM, then SIGKILL if it has not exited after `graceMs`. */
  async stop(graceMs = 10_000): Promise<void> {
    if (!this.isRunning) return;
    this.kill('SIGTERM');
    const timer = setTimeout(() => this.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  private onLine(line: string): void {
    this.recent.push(line);
    if (this.recent.length > RECENT_LINES) this.recent.shift();
    for (const waiter of this.waiters) waiter(line);
  }
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  server.close();
  await once(server, 'close');
  if (address === null || typeof address === 'string') throw new Error('no TCP address');
  return address.port;
}

/** Resolves once something accepts TCP connections on host:port. */
export async function waitForTcp(
  host: string,
  port: number,
  timeoutMs: number,
  proc?: ManagedProcess,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (proc && !proc.isRunning) throw proc.failure(`exited before listening on ${host}:${port}`);
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect({ host, port });
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) {
      const what = `did not listen on ${host}:${port} within ${timeoutMs} ms`;
      throw proc ? proc.failure(what) : new Error(what);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
