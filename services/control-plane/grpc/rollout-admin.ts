import { randomUUID } from 'node:crypto';
import { status as grpcStatus } from '@grpc/grpc-js';
import {
  WorkflowExecutionAlreadyStartedError,
  WorkflowIdReusePolicy,
  WorkflowNotFoundError,
  isGrpcServiceError,
  type Client,
} from '@temporalio/client';
import type { Logger } from 'pino';
import { TASK_QUEUES } from '../../../common/names.js';
import {
  FINISHED_PHASES,
  ROLLOUT_QUERIES,
  ROLLOUT_SIGNALS,
  ROLLOUT_WORKFLOW_TYPE,
  isRolloutId,
  rolloutWorkflowId,
  type RolloutSpec,
  type RolloutStatus,
} from '../../../common/rollout.js';
import { RolloutSpecError, parseRolloutSpec } from '../../../common/rollout-spec.js';
import type {
  AdminServiceServer,
  CancelRolloutRequest,
  GetRolloutRequest,
  ListRolloutsRequest,
  RolloutSummary,
  StartRolloutRequest,
} from '../../../proto/gen/edgeforge/v1/admin.pb.js';
import type { RolloutRecords } from '../rollouts/rollout-records.js';
import { stalledRolloutQueues, type QueueStall } from '../rollouts/rollout-health.js';
import {
  TemporalNotConfiguredError,
  TemporalUnavailableError,
  type RolloutTemporal,
} from '../rollouts/temporal-connection.js';
import {
  AlreadyExistsError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
} from './errors.js';
import { unary, type UnaryContext } from './unary.js';
import { MAX_PAGE_SIZE } from './validation.js';

function classesTaken(
  held: { hardwareClass: string; rolloutId: string }[],
  named: boolean,
): FailedPreconditionError {
  const list = held.map((l) => `${l.hardwareClass} (rollout ${l.rolloutId})`).join(', ');
  const way = named
    ? 'wait for it to end or cancel it (`edgeforge rollout cancel ID`)'
    : 'wait for it to end, cancel it (`edgeforge rollout cancel ID`), or name the other classes in hardwareClasses';
  return new FailedPreconditionError(
    `a running rollout owns hardware class(es) ${list}: one rollout per class at a time; ${way}`,
  );
}

/** Specs are small; a larger one is a mistake (a model pasted in) and would bloat the history. */
const MAX_SPEC_BYTES = 64 * 1024;
/** A running workflow that does not answer this fast is read from its record instead. */
const QUERY_TIMEOUT_MS = 5_000;
const MAX_REASON_LENGTH = 1024;
const PAGE_TOKEN = /^[A-Za-z0-9_-]{1,512}$/;

export interface RolloutAdminDependencies {
  temporal: RolloutTemporal;
  records: RolloutRecords;
  /** Why the control plane cannot use NATS now (records, census, devices); undefined when it can. */
  natsProblem?: () => string | undefined;
}

type RolloutMethods = Pick<
  AdminServiceServer,
  'startRollout' | 'getRollout' | 'listRollouts' | 'cancelRollout'
>;

/** AdminService's rollout calls: Temporal for the workflows, the rollouts KV bucket for records. */
export function createRolloutAdmin(
  ctx: UnaryContext,
  { temporal, records, natsProblem }: RolloutAdminDependencies,
): RolloutMethods {
  const service = 'edgeforge.v1.AdminService';

  return {
    startRollout: unary(ctx, service, 'StartRollout', 'admin', async (request, _caller, log) => {
      const spec = validateStartRollout(request);
      const workflowId = rolloutWorkflowId(spec.rolloutId);
      // Temporal forgets closed workflows after its retention period; the record does not.
      if (await records.get(spec.rolloutId)) throw alreadyExists(spec.rolloutId, workflowId);
      // One rollout per class: the workflow's lease decides races; this says it up front.
      const held = await records.heldLeases(spec.hardwareClasses);
      if (held.length > 0) throw classesTaken(held, spec.hardwareClasses !== undefined);
      const handle = await temporal
        .run(`starting rollout ${spec.rolloutId}`, (client) =>
          client.workflow.start(ROLLOUT_WORKFLOW_TYPE, {
            workflowId,
            taskQueue: TASK_QUEUES.orchestrator,
            args: [spec] satisfies [RolloutSpec],
            workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
          }),
        )
        .catch((err: unknown) => {
          if (err instanceof WorkflowExecutionAlreadyStartedError) {
            throw alreadyExists(spec.rolloutId, workflowId);
          }
          throw err;
        });
      log.info(
        { rolloutId: spec.rolloutId, workflowId, runId: handle.firstExecutionRunId },
        'rollout started',
      );
      return { rolloutId: spec.rolloutId, workflowId, runId: handle.firstExecutionRunId };
    }),

    getRollout: unary(ctx, service, 'GetRollout', 'admin', async (request, _caller, log) => {
      const rolloutId = validateRolloutId(request);
      const { status, warnings } = await rolloutStatus(rolloutId, temporal, records, log);
      const nats = natsProblem?.();
      if (nats && !FINISHED_PHASES.includes(status.phase)) {
        warnings.push(
          `${nats}; device reports are not counted, so no wave is judged until it is back`,
        );
      }
      return { summary: toSummary(status), statusJson: JSON.stringify(status), warnings };
    }),

    listRollouts: unary(ctx, service, 'ListRollouts', 'admin', async (request) => {
      const req = validateListRollouts(request);
      const all = (await records.list()).sort(newestFirst);
      // The token is the sort key of the last rollout sent: stable while new rollouts start.
      const after = req.pageToken ? decodeToken(req.pageToken) : null;
      const remaining = after ? all.filter((r) => newestFirst(r, after) > 0) : all;
      const page = remaining.slice(0, req.pageSize);
      const last = page.at(-1);
      return {
        rollouts: page.map(toSummary),
        nextPageToken: remaining.length > page.length && last ? encodeToken(last) : '',
      };
    }),

    cancelRollout: unary(ctx, service, 'CancelRollout', 'admin', async (request, _caller, log) => {
      const { rolloutId, reason } = validateCancelRollout(request);
      const workflowId = rolloutWorkflowId(rolloutId);
      // A rollout recorded as ended needs no Temporal to answer.
      const record = await records.get(rolloutId);
      if (record && FINISHED_PHASES.includes(record.phase)) return { cancelled: false };
      const cancelled = await temporal.run(`cancelling rollout ${rolloutId}`, async (client) => {
        const running = await isRunning(client, workflowId);
        if (running === null) {
          if (record) return false;
          throw notFound(rolloutId);
        }
        if (!running) return false;
        return requestCancel(client, temporal, workflowId, reason);
      });
      log.info({ rolloutId, workflowId, cancelled, reason }, 'rollout cancel requested');
      return { cancelled };
    }),
  };
}

/**
 * Live status from the running workflow's query; the stored record when the workflow has
 * finished, does not answer (no orchestrator worker), or Temporal is unusable. For a running
 * rollout, with warnings when something it waits on is missing.
 */
async function rolloutStatus(
  rolloutId: string,
  temporal: RolloutTemporal,
  records: RolloutRecords,
  log: Logger,
): Promise<{ status: RolloutStatus; warnings: string[] }> {
  const workflowId = rolloutWorkflowId(rolloutId);
  let running: boolean | null;
  try {
    running = await temporal.run(`reading rollout ${rolloutId}`, (client) =>
      isRunning(client, workflowId),
    );
  } catch (err) {
    if (!(err instanceof TemporalNotConfiguredError || err instanceof TemporalUnavailableError)) {
      throw err;
    }
    // The record is at most one phase change old: better than no answer.
    const record = await records.get(rolloutId);
    if (!record) throw err;
    const warnings = FINISHED_PHASES.includes(record.phase)
      ? []
      : [
          `${err.message} This is the rollout's saved record (of ${record.updatedAt}); it does not advance while Temporal is unreachable.`,
        ];
    return { status: record, warnings };
  }
  if (running) {
    const stalls = await stalledQueues(temporal, workflowId, log);
    const warnings = stalls.map((s) => s.warning);
    // With no workflow poller the query can only time out: go straight to the record.
    const queryable = !stalls.some((s) => s.wait.type === 'workflow');
    let queryError: unknown = null;
    if (queryable) {
      try {
        const status = await temporal.run(
          `querying rollout ${rolloutId}`,
          (client) =>
            client.workflow.getHandle(workflowId).query<RolloutStatus>(ROLLOUT_QUERIES.status),
          QUERY_TIMEOUT_MS,
        );
        return { status, warnings };
      } catch (err) {
        log.warn({ err, rolloutId, workflowId }, 'rollout status query failed; reading the record');
        queryError = err;
      }
    }
    const record = await records.get(rolloutId);
    if (record) {
      warnings.push(
        `the workflow did not answer its status query; this is the rollout's saved record (of ${record.updatedAt})`,
      );
      return { status: record, warnings };
    }
    throw new TemporalUnavailableError(
      `rollout ${rolloutId} is running, but its workflow did not answer the status query and ` +
        'has written no record yet: ' +
        (warnings.length > 0
          ? warnings.join('; ')
          : 'is the orchestrator worker running? (`edgeforge up` starts one)'),
      { cause: queryError ?? undefined, context: { rolloutId } },
    );
  }
  const record = await records.get(rolloutId);
  if (record) return { status: record, warnings: [] };
  if (running === false) {
    throw new NotFoundError(
      `rollout ${rolloutId}'s workflow ended without writing a record; workflow ${workflowId} ` +
        'in the Temporal UI shows why',
      { context: { rolloutId } },
    );
  }
  throw notFound(rolloutId);
}

/** What stalledRolloutQueues finds; a failure to ask is logged, not the caller's problem. */
async function stalledQueues(
  temporal: RolloutTemporal,
  workflowId: string,
  log: Logger,
): Promise<QueueStall[]> {
  try {
    return await temporal.run(`describing workflow ${workflowId}`, (client) =>
      stalledRolloutQueues(client, temporal.settings?.namespace ?? 'default', workflowId),
    );
  } catch (err) {
    log.warn({ err, workflowId }, 'could not ask Temporal who polls the rollout task queues');
    return [];
  }
}

/** True while the workflow runs, false once it has closed, null when Temporal has no such id. */
async function isRunning(client: Client, workflowId: string): Promise<boolean | null> {
  try {
    const description = await client.workflow.getHandle(workflowId).describe();
    return description.status.name === 'RUNNING';
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return null;
    throw err;
  }
}

/**
 * Cancels with the reason recorded twice: signalled to the workflow first, which writes it into
 * the rollout record, and as the cancellation's cause in the workflow's history (handle.cancel()
 * takes none). False when the workflow closed in the meantime.
 */
async function requestCancel(
  client: Client,
  temporal: RolloutTemporal,
  workflowId: string,
  reason: string,
): Promise<boolean> {
  const because = reason || 'cancelled with edgeforge (no reason given)';
  try {
    if (reason) {
      await client.workflow.getHandle(workflowId).signal(ROLLOUT_SIGNALS.cancelReason, reason);
    }
    await client.workflowService.requestCancelWorkflowExecution({
      namespace: temporal.settings?.namespace,
      workflowExecution: { workflowId },
      identity: client.options.identity,
      requestId: randomUUID(),
      reason: because,
    });
    return true;
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return false;
    if (isGrpcServiceError(err) && err.code === grpcStatus.NOT_FOUND) return false;
    throw err;
  }
}

function alreadyExists(rolloutId: string, workflowId: string): AlreadyExistsError {
  return new AlreadyExistsError(
    `rollout ${rolloutId} already exists (workflow ${workflowId}): give the spec another ` +
      'rolloutId, or leave it out to get a generated one',
    { context: { rolloutId } },
  );
}

function notFound(rolloutId: string): NotFoundError {
  return new NotFoundError(
    `no rollout ${rolloutId}: neither a workflow nor a record has that id (list them with ListRollouts)`,
    { context: { rolloutId } },
  );
}

export function toSummary(status: RolloutStatus): RolloutSummary {
  return {
    rolloutId: status.rolloutId,
    phase: status.phase,
    modelId: status.modelId ?? '',
    startedAt: new Date(status.startedAt),
    updatedAt: new Date(status.updatedAt),
    finishedAt: status.finishedAt ? new Date(status.finishedAt) : undefined,
    hardwareClasses: status.classes.length,
    devicesTotal: status.classes.reduce((n, c) => n + c.devicesTotal, 0),
    devicesDone: status.classes.reduce((n, c) => n + c.devicesDone, 0),
    detail: status.detail,
  };
}

type SortKey = Pick<RolloutStatus, 'startedAt' | 'rolloutId'>;

/** Newest startedAt first; the rollout id breaks ties so that the order is total. */
function newestFirst(a: SortKey, b: SortKey): number {
  const byTime = Date.parse(b.startedAt) - Date.parse(a.startedAt);
  if (byTime !== 0 && !Number.isNaN(byTime)) return byTime;
  return a.rolloutId < b.rolloutId ? -1 : a.rolloutId > b.rolloutId ? 1 : 0;
}

function encodeToken(r: SortKey): string {
  return Buffer.from(JSON.stringify([r.startedAt, r.rolloutId])).toString('base64url');
}

function decodeToken(token: string): SortKey {
  try {
    const value: unknown = JSON.parse(Buffer.from(token, 'base64url').toString());
    if (
      Array.isArray(value) &&
      value.length === 2 &&
      typeof value[0] === 'string' &&
      typeof value[1] === 'string'
    ) {
      return { startedAt: value[0], rolloutId: value[1] };
    }
  } catch {
    // reported below
  }
  throw new InvalidArgumentError(
    'page_token',
    'is not a token this server handed out: pass next_page_token unchanged',
  );
}

// Request validation: every field checked before anything else runs; failures name the field.

function validateStartRollout(request: StartRolloutRequest): RolloutSpec {
  const text = request.specJson;
  if (text.trim() === '') throw new InvalidArgumentError('spec_json', 'is required');
  const bytes = Buffer.byteLength(text);
  if (bytes > MAX_SPEC_BYTES) {
    throw new InvalidArgumentError('spec_json', `is ${bytes} bytes; at most ${MAX_SPEC_BYTES}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new InvalidArgumentError('spec_json', `is not valid JSON (${(err as Error).message})`);
  }
  try {
    return parseRolloutSpec(json);
  } catch (err) {
    if (!(err instanceof RolloutSpecError)) throw err;
    const [first, ...rest] = err.issues.map((i) => ({
      field: i.path ? `spec_json.${i.path}` : 'spec_json',
      problem: i.problem,
    }));
    throw new InvalidArgumentError(
      first?.field ?? 'spec_json',
      [first?.problem ?? err.message, ...rest.map((i) => `${i.field}: ${i.problem}`)].join('; '),
    );
  }
}

function validateRolloutId(request: GetRolloutRequest | CancelRolloutRequest): string {
  const id = request.rolloutId;
  if (!id) throw new InvalidArgumentError('rollout_id', 'is required');
  if (!isRolloutId(id)) {
    throw new InvalidArgumentError('rollout_id', 'must be 1 to 64 of A-Z a-z 0-9 _ -');
  }
  return id;
}

function validateCancelRollout(request: CancelRolloutRequest) {
  const rolloutId = validateRolloutId(request);
  if (request.reason.length > MAX_REASON_LENGTH) {
    throw new InvalidArgumentError(
      'reason',
      `is ${request.reason.length} characters; at most ${MAX_REASON_LENGTH}`,
    );
  }
  return { rolloutId, reason: request.reason.trim() };
}

function validateListRollouts(request: ListRolloutsRequest) {
  if (request.pageSize > MAX_PAGE_SIZE) {
    throw new InvalidArgumentError('page_size', `is ${request.pageSize}; at most ${MAX_PAGE_SIZE}`);
  }
  if (request.pageToken && !PAGE_TOKEN.test(request.pageToken)) {
    throw new InvalidArgumentError(
      'page_token',
      'is not a token this server handed out: pass next_page_token unchanged',
    );
  }
  return { pageSize: request.pageSize || 100, pageToken: request.pageToken };
}
