import { describe, expect, it } from 'vitest';
import { cohortOf } from '../../../common/cohorts.js';
import { devicePermissions } from './device-permissions.js';

/** NATS subject matching: `*` one token, `>` the rest. */
function matches(pattern: string, subject: string): boolean {
  const p = pattern.split('.');
  const s = subject.split('.');
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '>') return s.length > i;
    if (i >= s.length || (p[i] !== '*' && p[i] !== s[i])) return false;
  }
  return p.length === s.length;
}
const allowed = (patterns: string[], subject: string) => patterns.some((p) => matches(p, subject));

describe("a device's NATS permissions", () => {
  const id = 'd-aaaaaaaaaaaaaaaaaaaa';
  const cls = 'aarch64-neon-nofp16-cpu-4g';
  const cohort = String(cohortOf(id)).padStart(2, '0');
  const other = String((cohortOf(id) + 1) % 100).padStart(2, '0');
  const { publish, subscribe } = devicePermissions(id, cls);
  const desired = '$JS.API.DIRECT.GET.KV_edgeforge_desired.$KV.edgeforge_desired';

  it('read its own entry, its track and its class’s release bucket', () => {
    expect(allowed(publish, `${desired}.device.${id}`)).toBe(true);
    expect(allowed(publish, `${desired}.track.${cls}.${cohort}`)).toBe(true);
    const release = `OBJ_edgeforge_release_${cls}`;
    expect(allowed(publish, `$JS.API.STREAM.INFO.${release}`)).toBe(true);
    expect(
      allowed(
        publish,
        `$JS.API.CONSUMER.CREATE.${release}.oc_1.$O.edgeforge_release_${cls}.C.nuid`,
      ),
    ).toBe(true);
    expect(allowed(subscribe, `_INBOX.${id}.abc.1`)).toBe(true);
    expect(allowed(subscribe, `$KV.edgeforge_desired.device.${id}`)).toBe(true);
  });

  it('reach nothing of another device, cohort or class, and write nothing', () => {
    for (const subject of [
      `${desired}.device.d-bbbbbbbbbbbbbbbbbbbb`,
      `${desired}.track.${cls}.${other}`,
      `${desired}.track.x86_64-avx2-cpu-8g.${cohort}`,
      '$JS.API.DIRECT.GET.KV_edgeforge_desired',
      '$JS.API.STREAM.MSG.GET.KV_edgeforge_desired',
      '$JS.API.STREAM.INFO.OBJ_edgeforge_models',
      '$JS.API.CONSUMER.CREATE.OBJ_edgeforge_models.oc.$O.edgeforge_models.C.x',
      `$JS.API.CONSUMER.CREATE.OBJ_edgeforge_release_${cls}.oc.$O.edgeforge_release_${cls}.M.x`,
      '$JS.API.STREAM.INFO.KV_edgeforge_devices',
      `$KV.edgeforge_desired.device.${id}`,
      `$KV.edgeforge_benchmarks.r.v.${id}`,
      `$O.edgeforge_release_${cls}.C.x`,
      '$SYS.REQ.USER.AUTH',
      '_INBOX.d-bbbbbbbbbbbbbbbbbbbb.x',
    ]) {
      expect(allowed(publish, subject), subject).toBe(false);
    }
    for (const subject of [
      '_INBOX.x.y',
      '_INBOX.d-bbbbbbbbbbbbbbbbbbbb.1',
      '$KV.edgeforge_desired.device.d-b',
    ]) {
      expect(allowed(subscribe, subject), subject).toBe(false);
    }
  });

  it('are refused for ids and classes that are not single subject tokens', () => {
    expect(() => devicePermissions('d-1.>', cls)).toThrow(/subject token/);
    expect(() => devicePermissions(id, 'x.>')).toThrow(/subject token/);
  });
});
