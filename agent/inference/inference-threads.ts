/**
 * Intra-op threads for a session on a device with `deviceThreads` hardware threads (its profile's,
 * detected or overridden): what was asked for (0: as many as the device has), but never more than
 * the device has. A simulated one-thread board thus really runs on one thread, even on a big host.
 */
export function inferenceThreads(requested: number, deviceThreads: number): number {
  return Math.min(requested > 0 ? requested : deviceThreads, deviceThreads);
}
