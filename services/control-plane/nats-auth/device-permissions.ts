import { cohortOf } from '../../../common/cohorts.js';
import {
  deviceDesiredKey,
  deviceInboxPrefix,
  KV_BUCKETS,
  kvStream,
  kvSubject,
  objectStream,
  releaseBucket,
  trackKey,
} from '../../../common/names.js';

/** Publish and subscribe allow-lists; everything else is denied. */
export interface NatsPermissions {
  publish: string[];
  subscribe: string[];
}

/**
 * What one device may do on NATS, and nothing more:
 * - read its two desired-state keys, `device.<id>` and its track `track.<class>.<cohort>`: a core
 *   subscription to each key's subject tells it of a change, and a direct get (per-key subject)
 *   reads the value with its revision. No consumer per device, no access to any other key.
 * - read its class's release bucket (the models released to its class): the Object Store's
 *   stream info, its metadata and an ordered consumer on a chunk subject, flow control included.
 * - receive replies and deliveries on its own inbox prefix only.
 * It cannot publish to any `$KV.`/`$O.` subject (no writes), reach the device registry, the
 * benchmarks or rollouts buckets, the central models bucket (teachers, logits, checkpoints), or
 * another class's releases. The class comes from the registry, not from the device.
 */
export function devicePermissions(deviceId: string, hardwareClass: string): NatsPermissions {
  const desired = KV_BUCKETS.desiredState;
  const desiredStream = kvStream(desired);
  const keys = [deviceDesiredKey(deviceId), trackKey(hardwareClass, cohortOf(deviceId))];
  const release = releaseBucket(hardwareClass);
  const releaseStream = objectStream(release);
  return {
    publish: [
      ...keys.map((k) => `$JS.API.DIRECT.GET.${desiredStream}.${kvSubject(desired, k)}`),
      `$JS.API.STREAM.INFO.${releaseStream}`,
      // The Object Store reads an object's metadata by subject ($O.<bucket>.M.<name>).
      `$JS.API.DIRECT.GET.${releaseStream}.$O.${release}.M.*`,
      `$JS.API.STREAM.MSG.GET.${releaseStream}`,
      // An ordered consumer on one object's chunks ($O.<bucket>.C.<nuid>), named in the subject.
      `$JS.API.CONSUMER.CREATE.${releaseStream}.*.$O.${release}.C.*`,
      `$JS.API.CONSUMER.INFO.${releaseStream}.*`,
      `$JS.API.CONSUMER.DELETE.${releaseStream}.*`,
      `$JS.FC.${releaseStream}.>`,
    ],
    subscribe: [`${deviceInboxPrefix(deviceId)}.>`, ...keys.map((k) => kvSubject(desired, k))],
  };
}
