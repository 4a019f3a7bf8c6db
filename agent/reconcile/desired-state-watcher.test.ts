import { describe, expect, it } from 'vitest';
import { resolve, WATCH_FAILURES_BEFORE_DEGRADED, WatchHealth } from './desired-state-watcher.js';

const own = 'device.d1';
const track = 'track.cls.07';
type Value = { revision: number; operation: 'PUT' | 'DEL'; value: string };
const put = (revision: number, value: string): Value => ({ revision, operation: 'PUT', value });
const del = (revision: number): Value => ({ revision, operation: 'DEL', value: '' });

describe('resolving a device entry against its track', () => {
  it('follows the track while the device has no entry of its own', () => {
    expect(resolve(new Map<string, Value>([[track, put(3, 'T')]]), own, track)).toEqual({
      ...put(3, 'T'),
      key: track,
    });
  });

  it("prefers the device's own entry, older or newer than the track's", () => {
    for (const [o, t] of [
      [5, 3],
      [3, 5],
    ] as const) {
      const latest = new Map<string, Value>([
        [own, put(o, 'O')],
        [track, put(t, 'T')],
      ]);
      expect(resolve(latest, own, track)).toEqual({ ...put(Math.max(o, t), 'O'), key: own });
    }
  });

  it("returns to the track when the device's entry is removed, with a newer revision", () => {
    const latest = new Map<string, Value>([
      [own, del(9)],
      [track, put(3, 'T')],
    ]);
    // Revision 9 > the 5 the device applied for its own entry: the track's value is applied.
    expect(resolve(latest, own, track)).toEqual({ ...put(9, 'T'), key: track });
  });

  it('says removed when neither key holds a value, and nothing before either was seen', () => {
    expect(resolve(new Map<string, Value>([[own, del(4)]]), own, track)).toMatchObject({
      revision: 4,
      operation: 'DEL',
    });
    expect(resolve(new Map(), own, track)).toBeUndefined();
  });
});

describe('whether the watch works', () => {
  it('says so after failures in a row, and clears it when a watch starts again', () => {
    const said: (string | undefined)[] = [];
    const health = new WatchHealth((p) => said.push(p));
    health.failed('nats down');
    health.watching();
    expect(said).toEqual([]); // one failure is a blip: nothing said
    for (let i = 0; i < WATCH_FAILURES_BEFORE_DEGRADED; i++) health.failed('permissions violation');
    expect(said).toEqual([
      `cannot watch its desired state (${WATCH_FAILURES_BEFORE_DEGRADED} attempts in a row): permissions violation`,
    ]);
    health.watching();
    expect(said.at(-1)).toBeUndefined();
    expect(said).toHaveLength(2);
  });
});
