import { setTimeout as sleep } from 'node:timers/promises';
import { Backoff } from '../../agent/heartbeat/backoff.js';
import type { ManagedProcess } from './managed-process.js';

/** One running instance of a part: its process, and how to stop it. */
export interface PartInstance {
  process: ManagedProcess;
  stop(): Promise<void>;
  /**
   * An HTTP endpoint that answers 2xx while the part works (its /healthz). A process that is up
   * but hung or broken answers nothing or 503: after `probe.failures` checks in a row it is
   * killed, and so restarted like one that died.
   */
  healthUrl?: string;
}

/** How parts with a healthUrl are checked. */
export interface ProbeSettings {
  intervalMs: number;
  /** A check that takes longer has failed. */
  timeoutMs: number;
  /** Failed checks in a row before the part is killed. */
  failures: number;
}

/** Every 10 s; 3 failures in a row (at least 30 s of no answer) before a kill. */
const DEFAULT_PROBE: ProbeSettings = { intervalMs: 10_000, timeoutMs: 5_000, failures: 3 };

export interface SupervisorOptions {
  /** Progress and restart messages. */
  say: (message: string) => void;
  /**
   * A part kept dying (maxRestarts within windowMs): the stack cannot run. Called once, with the
   * part's last output; the owner stops the stack and says why.
   */
  onGiveUp: (part: string, reason: string) => void;
  /** Restarts allowed within windowMs before giving up (default 5 in 5 minutes). */
  maxRestarts?: number;
  windowMs?: number;
  /** Wait before a restart: jittered, doubling from baseMs to capMs (default 1 s to 30 s). */
  backoff?: { baseMs: number; capMs: number };
  probe?: ProbeSettings;
}

/**
 * Keeps the embedded stack's parts running: a part whose process exits while the stack is up, or
 * stops answering its health check, is started again (same ports, data and settings, so clients
 * reconnect) after a jittered backoff, logged and counted; a part that keeps dying ends the stack
 * loudly instead of flapping forever.
 */
export class Supervisor {
  readonly #o: Required<SupervisorOptions>;
  readonly #parts: { name: string; current: PartInstance }[] = [];
  /** Restarts so far, by part. */
  readonly restarts = new Map<string, number>();
  /** Kills for a failed health check so far, by part (each is also a restart). */
  readonly healthKills = new Map<string, number>();
  #stopping = false;
  #gaveUp = false;

  constructor(options: SupervisorOptions) {
    this.#o = {
      maxRestarts: 5,
      windowMs: 5 * 60_000,
      backoff: { baseMs: 1_000, capMs: 30_000 },
      probe: DEFAULT_PROBE,
      ...options,
    };
  }

  /** Starts a part (a failure here is the caller's) and watches it from then on. */
  async add(name: string, start: () => Promise<PartInstance>): Promise<PartInstance> {
    const instance = await start();
    const part = { name, current: instance };
    this.#parts.push(part);
    void this.#watch(part, start);
    void this.#probe(name, instance);
    return instance;
  }

  /** Sends `signal` to a part's current process (a fault injected by a test); it is restarted. */
  kill(name: string, signal: NodeJS.Signals = 'SIGKILL'): void {
    const part = this.#parts.find((p) => p.name === name);
    if (!part) throw new RangeError(`no part ${name} in this stack`);
    part.current.process.kill(signal);
  }

  /** Stops watching, then stops every part, newest first. */
  async stopAll(): Promise<void> {
    this.#stopping = true;
    for (const part of [...this.#parts].reverse()) await part.current.stop().catch(() => {});
  }

  async #watch(part: { name: string; current: PartInstance }, start: () => Promise<PartInstance>) {
    const backoff = new Backoff(this.#o.backoff);
    const deaths: number[] = [];
    for (;;) {
      const code = await part.current.process.exited;
      if (this.#stopping) return;
      const last = part.current.process.recentOutput();
      for (;;) {
        const now = Date.now();
        deaths.push(now);
        while (deaths.length > 0 && deaths[0]! < now - this.#o.windowMs) deaths.shift();
        // The first death in a window: it had run well; the backoff starts from the bottom.
        if (deaths.length === 1) backoff.reset();
        if (deaths.length > this.#o.maxRestarts) {
          this.#giveUp(
            part.name,
            `${part.name} died ${deaths.length} times in a row${last ? `; its last output:\n${last}` : ''}`,
          );
          return;
        }
        const waitMs = backoff.next();
        this.#o.say(
          `${part.name} exited (code ${code ?? 'signal'}): restarting it in ${(waitMs / 1000).toFixed(1)} s ` +
            `(restart ${deaths.length} of at most ${this.#o.maxRestarts} in ${this.#o.windowMs / 60_000} min)`,
        );
        await new Promise((resolve) => setTimeout(resolve, waitMs));
        if (this.#stopping) return;
        try {
          part.current = await start();
          void this.#probe(part.name, part.current);
          this.restarts.set(part.name, (this.restarts.get(part.name) ?? 0) + 1);
          this.#o.say(`${part.name} is running again`);
          break;
        } catch (err) {
          this.#o.say(`${part.name} did not start again: ${(err as Error).message}`);
        }
      }
    }
  }

  /** Checks one instance's health until it exits; kills it when it fails too often in a row. */
  async #probe(name: string, instance: PartInstance): Promise<void> {
    const url = instance.healthUrl;
    if (!url) return;
    const { intervalMs, timeoutMs, failures } = this.#o.probe;
    let exited = false;
    void instance.process.exited.then(() => (exited = true));
    let failed = 0;
    for (;;) {
      // Unreferenced: a pending check never keeps a stopping process alive.
      await sleep(intervalMs, undefined, { ref: false });
      if (exited || this.#stopping) return;
      const problem = await healthProblem(url, timeoutMs);
      if (exited || this.#stopping) return;
      failed = problem === null ? 0 : failed + 1;
      if (failed < failures) continue;
      this.healthKills.set(name, (this.healthKills.get(name) ?? 0) + 1);
      this.#o.say(
        `${name} failed its health check ${failed} times in a row (${url}: ${problem}): ` +
          'killing it so that it is restarted',
      );
      instance.process.kill('SIGKILL');
      return;
    }
  }

  #giveUp(part: string, reason: string): void {
    if (this.#gaveUp || this.#stopping) return;
    this.#gaveUp = true;
    this.#o.onGiveUp(part, reason);
  }
}

/** Null when `url` answers 2xx within `timeoutMs`; otherwise what went wrong. */
async function healthProblem(url: string, timeoutMs: number): Promise<string | null> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    if (response.ok) return null;
    const body = (await response.text()).trim().slice(0, 200);
    return `HTTP ${response.status}${body ? ` ${body}` : ''}`;
  } catch (err) {
    const e = err as Error & { cause?: { code?: string } };
    if (e.name === 'TimeoutError') return `no answer in ${timeoutMs / 1000} s`;
    return e.cause?.code ?? e.message;
  }
}
