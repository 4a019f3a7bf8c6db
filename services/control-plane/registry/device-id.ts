import { createHash } from 'node:crypto';

/**
 * Stable device id from the name the device enrolls with, so enrolling again (after a wipe, or
 * with an expired credential) keeps the device's history instead of creating a twin.
 */
export function deviceIdFor(deviceName: string): string {
  return `d-${createHash('sha256').update(deviceName).digest('hex').slice(0, 20)}`;
}
