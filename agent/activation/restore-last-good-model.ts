import type { Logger } from '../../common/logger.js';
import { StatusEvent } from '../../proto/gen/edgeforge/v1/fleet.pb.js';
import type { Reporter } from '../fleet/reporter.js';
import type { DeviceActivity } from '../heartbeat/device-activity.js';
import type { Activator, RestoreResult } from './activator.js';

/**
 * At start, before anything else touches models: serve the last good model. When the active one
 * could not start (it crashed the agent on every start, or no longer loads) the device is
 * DEGRADED and says so to the control plane: ROLLED_BACK when the previous model serves in its
 * place, HEALTH_CHECK_FAILED when nothing can. The report goes out in the background (the
 * Reporter retries it), so a device without network still serves at once.
 */
export async function restoreLastGoodModel(options: {
  activator: Activator;
  activity: DeviceActivity;
  reporter: Reporter;
  logger: Logger;
}): Promise<RestoreResult> {
  const { activator, activity, reporter, logger } = options;
  const result = await activator.restore();
  if (result.problems.length === 0) return result;
  const detail = result.problems.join('; ');
  activity.setProblem('models', detail);
  logger.error(
    { problems: result.problems, serving: result.serving?.manifest.variant },
    'degraded',
  );
  const failed = result.rolledBackFrom?.manifest;
  void reporter.status({
    event: failed
      ? StatusEvent.STATUS_EVENT_ROLLED_BACK
      : StatusEvent.STATUS_EVENT_HEALTH_CHECK_FAILED,
    rolloutId: failed?.rolloutId ?? '',
    variant: failed?.variant ?? '',
    activeModel: activity.activeModel(),
    detail,
  });
  return result;
}
