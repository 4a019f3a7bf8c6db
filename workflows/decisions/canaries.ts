import { cohortOf } from '../../common/cohorts.js';

/**
 * The canary draw of one class, fed device by device (the registry is streamed, never held):
 * named devices first, then a seeded random sample spread over cohorts, one per cohort before
 * any cohort gives a second. Memory is O(cohorts × count) whatever the class's size. Pure.
 */
export class CanaryDraw {
  readonly #count: number;
  readonly #seed: number;
  readonly #named: ReadonlySet<string>;
  readonly #foundNamed: string[] = [];
  /** Per cohort, the `count` lowest tickets drawn, lowest first. */
  readonly #best = new Map<number, { ticket: number; deviceId: string }[]>();

  constructor(count: number, seed: number, named: readonly string[] = []) {
    this.#count = count;
    this.#seed = seed;
    this.#named = new Set(named);
  }

  /** A healthy online device of the class; `eligible` false: only a named device may be taken. */
  offer(deviceId: string, eligible = true): void {
    if (this.#named.has(deviceId)) {
      this.#foundNamed.push(deviceId);
      return;
    }
    if (!eligible) return;
    const cohort = cohortOf(deviceId);
    const kept = this.#best.get(cohort) ?? [];
    kept.push({ ticket: drawTicket(this.#seed, deviceId), deviceId });
    kept.sort((a, b) => a.ticket - b.ticket || (a.deviceId < b.deviceId ? -1 : 1));
    this.#best.set(cohort, kept.slice(0, this.#count));
  }

  /** The canaries, and the named devices that were not offered (offline, another class). */
  result(): { canaries: string[]; missingNamed: string[] } {
    const chosen = [...this.#foundNamed].sort().slice(0, this.#count);
    // Round robin over cohorts in the order of their best ticket: spread first, then depth.
    const cohorts = [...this.#best.values()].sort((a, b) => a[0]!.ticket - b[0]!.ticket);
    for (let depth = 0; chosen.length < this.#count; depth++) {
      const layer = cohorts.filter((c) => c.length > depth);
      if (layer.length === 0) break;
      for (const c of layer) {
        if (chosen.length >= this.#count) break;
        chosen.push(c[depth]!.deviceId);
      }
    }
    const found = new Set(this.#foundNamed);
    return { canaries: chosen, missingNamed: [...this.#named].filter((d) => !found.has(d)) };
  }
}

/** A device's place in a seeded draw: FNV-1a over the seed and the id, then murmur3's mix. */
function drawTicket(seed: number, deviceId: string): number {
  let hash = 0x811c9dc5;
  const text = `${seed}:${deviceId}`;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  // Without the mix, nearby ids would draw nearby tickets.
  hash ^= hash >>> 16;
  hash = Math.imul(hash, 0x85ebca6b) >>> 0;
  hash ^= hash >>> 13;
  hash = Math.imul(hash, 0xc2b2ae35) >>> 0;
  hash ^= hash >>> 16;
  return hash >>> 0;
}
