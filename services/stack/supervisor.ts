import { Backoff } from '../../agent/heartbeat/backoff.js';
import type { ManagedProcess } from './managed-process.js';

/** One running instance of a part: its process, and how to stop it. */
export interface PartInstance {
  process: ManagedProcess;
  stop(): Promise<void>;
}

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
}

/**
 * Keeps the embedded stack's parts running: a part whose process exits while the stack is up is
 * started again (same ports, data and settings, so clients reconnect) after a jittered backoff,
 * logged and counted; a part that keeps dying ends the stack loudly instead of flapping forever.
 */
export class Supervisor {
  readonly #o: Required<Omit<SupervisorOptions, 'backoff'>> & SupervisorOptions;
  readonly #parts: { name: string; current: PartInstance }[] = [];
  /** Restarts so far, by part. */
  readonly restarts = new Map<string, number>();
  #stopping = false;
  #gaveUp = false;

  constructor(options: SupervisorOptions) {
    this.#o = { maxRestarts: 5, windowMs: 5 * 60_000, ...options };
  }

  /** Starts a part (a failure here is the caller's) and watches it from then on. */
  async add(name: string, start: () => Promise<PartInstance>): Promise<PartInstance> {
    const instance = await start();
    const part = { name, current: instance };
    this.#parts.push(part);
    void this.#watch(part, start);
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
    const backoff = new Backoff(this.#o.backoff ?? { baseMs: 1_000, capMs: 30_000 });
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
          this.restarts.set(part.name, (this.restarts.get(part.name) ?? 0) + 1);
          this.#o.say(`${part.name} is running again`);
          break;
        } catch (err) {
          this.#o.say(`${part.name} did not start again: ${(err as Error).message}`);
        }
      }
    }
  }

  #giveUp(part: string, reason: string): void {
    if (this.#gaveUp || this.#stopping) return;
    this.#gaveUp = true;
    this.#o.onGiveUp(part, reason);
  }
}
