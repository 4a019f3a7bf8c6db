import { describe, expect, it } from 'vitest';
import { TASK_QUEUES } from '../../../common/names.js';
import { idleQueueWarning, POLLER_FRESH_MS, queuesWaitedOn } from './rollout-health.js';

const now = new Date('2026-12-04T12:00:00.000Z');
const ago = (ms: number) => new Date(now.getTime() - ms);
const [workflowWait] = queuesWaitedOn('edgeforge-orchestrator', []);

describe('queuesWaitedOn', () => {
  it("always waits on the workflow's own queue, for workflow and activity tasks", () => {
    expect(queuesWaitedOn('q', ['publishRelease'])).toEqual([
      { taskQueue: 'q', type: 'workflow', part: 'orchestrator worker' },
      { taskQueue: 'q', type: 'activity', part: 'orchestrator worker' },
    ]);
  });

  it("waits on the gpu worker's queue only while one of its activities is pending", () => {
    const waits = queuesWaitedOn('q', ['saveRolloutRecord', 'distill_student']);
    expect(waits.at(-1)).toEqual({
      taskQueue: TASK_QUEUES.gpu,
      type: 'activity',
      part: 'gpu worker',
    });
    expect(waits).toHaveLength(3);
  });
});

describe('idleQueueWarning', () => {
  it('says nothing while a poller polled recently', () => {
    const pollers = { lastPolledAt: [ago(POLLER_FRESH_MS * 3), ago(10_000)], backlog: 4 };
    expect(idleQueueWarning(workflowWait!, pollers, now)).toBeNull();
  });

  it('names the queue, the part, the last poll and the backlog once every poller is stale', () => {
    const last = ago(POLLER_FRESH_MS + 1);
    const warning = idleQueueWarning(
      workflowWait!,
      { lastPolledAt: [ago(POLLER_FRESH_MS * 2), last], backlog: 5 },
      now,
    );
    expect(warning).toBe(
      'no orchestrator worker polls task queue edgeforge-orchestrator (workflow tasks; ' +
        `no poll since ${last.toISOString()}, 5 task(s) waiting): the rollout cannot advance ` +
        'until one does. Is the orchestrator worker running? ' +
        '(`edgeforge up` restarts its own; elsewhere check its process or pod and its log)',
    );
  });

  it('reads the same on every poll of one stall, so a watcher prints it once', () => {
    const pollers = { lastPolledAt: [ago(POLLER_FRESH_MS * 2)], backlog: null };
    const later = new Date(now.getTime() + 30_000);
    expect(idleQueueWarning(workflowWait!, pollers, later)).toBe(
      idleQueueWarning(workflowWait!, pollers, now),
    );
  });

  it('says no poll in 5 minutes when Temporal lists no poller (or none with a time)', () => {
    for (const lastPolledAt of [[], [null]]) {
      const warning = idleQueueWarning(workflowWait!, { lastPolledAt, backlog: 0 }, now);
      expect(warning).toMatch(
        /^no orchestrator worker polls .*\(workflow tasks; no poll in 5 minutes\):/,
      );
    }
  });
});
