import type { Client } from '@temporalio/client';
import type { GpuActivities } from '../../../common/gpu-contracts.js';
import { TASK_QUEUES } from '../../../common/names.js';

/** temporal.api.enums.v1.TaskQueueType: which kind of task a poller asks for. */
const TASK_QUEUE_TYPE = { workflow: 1, activity: 2 } as const;

/**
 * A poller seen within this long counts as alive. A worker's long poll lasts up to about a minute
 * before it polls again, and Temporal keeps listing a poller for 5 minutes after its last poll,
 * so a listed poller alone says nothing: its last access time does.
 */
export const POLLER_FRESH_MS = 120_000;

/** Activities the Python gpu worker serves (its task queue), by Temporal activity type. */
const GPU_ACTIVITY_TYPES = new Set(
  Object.keys({
    describe_environment: true,
    prepare_teacher: true,
    distill_student: true,
    import_model: true,
    build_variants: true,
  } satisfies Record<keyof GpuActivities, true>),
);

/** A task queue a running rollout waits on, and the part of the stack that should poll it. */
export interface QueueWait {
  taskQueue: string;
  type: keyof typeof TASK_QUEUE_TYPE;
  part: 'orchestrator worker' | 'gpu worker';
}

/**
 * The queues a running rollout needs polled now: the workflow's own (its workflow tasks and the
 * fleet activities, served by the orchestrator worker) always, the gpu worker's while one of its
 * activities is pending.
 */
export function queuesWaitedOn(
  workflowTaskQueue: string,
  pendingActivityTypes: readonly string[],
): QueueWait[] {
  const waits: QueueWait[] = [
    { taskQueue: workflowTaskQueue, type: 'workflow', part: 'orchestrator worker' },
    { taskQueue: workflowTaskQueue, type: 'activity', part: 'orchestrator worker' },
  ];
  if (pendingActivityTypes.some((t) => GPU_ACTIVITY_TYPES.has(t))) {
    waits.push({ taskQueue: TASK_QUEUES.gpu, type: 'activity', part: 'gpu worker' });
  }
  return waits;
}

/** What DescribeTaskQueue said of one queue: when each of its pollers last polled. */
export interface QueuePollers {
  lastPolledAt: (Date | null)[];
  /** Tasks waiting for a worker, where the server reports it. */
  backlog: number | null;
}

/** A warning for a queue no live worker polls, or null while one does. */
export function idleQueueWarning(wait: QueueWait, pollers: QueuePollers, now: Date): string | null {
  const times = pollers.lastPolledAt.filter((t): t is Date => t !== null).map((t) => t.getTime());
  const last = times.length > 0 ? Math.max(...times) : null;
  if (last !== null && now.getTime() - last < POLLER_FRESH_MS) return null;
  // A time, not an age: the same stall reads the same on every poll (watch prints changes).
  const seen =
    last === null ? 'no poll in 5 minutes' : `no poll since ${new Date(last).toISOString()}`;
  const backlog = pollers.backlog ? `, ${pollers.backlog} task(s) waiting` : '';
  return (
    `no ${wait.part} polls task queue ${wait.taskQueue} (${wait.type} tasks; ${seen}${backlog}): ` +
    `the rollout cannot advance until one does. Is the ${wait.part} running? ` +
    '(`edgeforge up` restarts its own; elsewhere check its process or pod and its log)'
  );
}

/** Asks Temporal who polls `wait`'s queue. */
export async function describeQueuePollers(
  client: Client,
  namespace: string,
  wait: QueueWait,
): Promise<QueuePollers> {
  const response = await client.workflowService.describeTaskQueue({
    namespace,
    taskQueue: { name: wait.taskQueue },
    taskQueueType: TASK_QUEUE_TYPE[wait.type],
    reportStats: true,
  });
  const backlog = response.stats?.approximateBacklogCount;
  return {
    lastPolledAt: (response.pollers ?? []).map((p) =>
      p.lastAccessTime?.seconds != null ? new Date(Number(p.lastAccessTime.seconds) * 1000) : null,
    ),
    backlog: backlog != null ? Number(backlog) : null,
  };
}

/** A queue a running rollout waits on that no live worker polls, and what to tell the user. */
export interface QueueStall {
  wait: QueueWait;
  warning: string;
}

/**
 * Why a running workflow may not be advancing, from Temporal's view of it and of the queues it
 * waits on. Empty when every queue has a live poller.
 */
export async function stalledRolloutQueues(
  client: Client,
  namespace: string,
  workflowId: string,
  now = new Date(),
): Promise<QueueStall[]> {
  const description = await client.workflow.getHandle(workflowId).describe();
  const pending = (description.raw.pendingActivities ?? []).map((a) => a.activityType?.name ?? '');
  const stalls: QueueStall[] = [];
  for (const wait of queuesWaitedOn(description.taskQueue, pending)) {
    const warning = idleQueueWarning(
      wait,
      await describeQueuePollers(client, namespace, wait),
      now,
    );
    if (warning) stalls.push({ wait, warning });
  }
  return stalls;
}
