/**
 * What `npm run bench -- rollout-scale` reads while a rollout runs, without taking part in it:
 * nats-server's monitoring endpoints, the desired-state stream's info, every desired-state write
 * (a core NATS subscription on the bucket's subjects: no JetStream consumer, so it does not count
 * against the stream's consumer limit), the census the control plane keeps, the control plane's
 * /metrics, and the Temporal workflows' size (DescribeWorkflowExecution) and histories.
 */
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import type { Client, WorkflowHandle } from '@temporalio/client';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import type { ClassCensus } from '../../common/census.js';
import { censusKey, KV_BUCKETS } from '../../common/names.js';
import type { NatsConnection } from '../../common/nats.js';

export const DESIRED_STREAM = `KV_${KV_BUCKETS.desiredState}`;
export const MODELS_STREAM = 'OBJ_edgeforge_models';

// --- nats-server monitoring -------------------------------------------------------------------

export interface NatsSample {
  at: number;
  consumers: number;
  desiredConsumers: number;
  modelConsumers: number;
  connections: number;
  apiTotal: number;
  apiErrors: number;
}

interface Jsz {
  consumers?: number;
  api?: { total?: number; errors?: number };
  account_details?: {
    stream_detail?: { name: string; state?: { consumer_count?: number } }[];
  }[];
}

export async function sampleNats(monitorUrl: string): Promise<NatsSample> {
  const [jsz, connz] = await Promise.all([
    fetch(`${monitorUrl}/jsz?accounts=true&streams=true`).then((r) => r.json() as Promise<Jsz>),
    // num_connections counts the page (limit=1); total counts them all.
    fetch(`${monitorUrl}/connz?limit=1`).then((r) => r.json() as Promise<{ total?: number }>),
  ]);
  const streams = (jsz.account_details ?? []).flatMap((a) => a.stream_detail ?? []);
  const consumersOf = (name: string) =>
    streams.find((s) => s.name === name)?.state?.consumer_count ?? 0;
  return {
    at: Date.now(),
    consumers: jsz.consumers ?? 0,
    desiredConsumers: consumersOf(DESIRED_STREAM),
    modelConsumers: consumersOf(MODELS_STREAM),
    connections: connz.total ?? 0,
    apiTotal: jsz.api?.total ?? 0,
    apiErrors: jsz.api?.errors ?? 0,
  };
}

/** The stream's message count and last sequence: how many KV writes it took in, all told. */
export async function streamState(
  jsm: JetStreamManager,
  stream: string,
): Promise<{ messages: number; lastSeq: number }> {
  const info = await jsm.streams.info(stream);
  return { messages: info.state.messages, lastSeq: info.state.last_seq };
}

export async function streamConfigMaxConsumers(
  jsm: JetStreamManager,
  stream: string,
): Promise<number> {
  return (await jsm.streams.info(stream)).config.max_consumers;
}

export { jetstreamManager };

// --- desired-state writes ---------------------------------------------------------------------

export interface DesiredWrite {
  at: number;
  key: string;
  operation: 'PUT' | 'DEL' | 'PURGE';
  kind: 'run' | 'benchmark' | null;
  rolloutId: string | null;
  /** The model a `run` names. */
  sha256: string | null;
}

/** Every write to the desired-state bucket, as nats-server receives it. */
export class DesiredWrites {
  readonly writes: DesiredWrite[] = [];
  readonly #sub;

  constructor(nc: NatsConnection) {
    const prefix = `$KV.${KV_BUCKETS.desiredState}.`;
    this.#sub = nc.subscribe(`${prefix}>`, {
      callback: (err, msg) => {
        if (err) return;
        const op = msg.headers?.get('KV-Operation');
        const operation = op === 'DEL' || op === 'PURGE' ? op : 'PUT';
        let value: {
          kind?: 'run' | 'benchmark';
          rolloutId?: string;
          model?: { manifest?: { model?: { sha256?: string } } };
        } = {};
        if (operation === 'PUT') {
          try {
            value = msg.json();
          } catch {
            value = {};
          }
        }
        this.writes.push({
          at: Date.now(),
          key: msg.subject.slice(prefix.length),
          operation,
          kind: value.kind ?? null,
          rolloutId: value.rolloutId ?? null,
          sha256: value.model?.manifest?.model?.sha256 ?? null,
        });
      },
    });
  }

  since(at: number): DesiredWrite[] {
    return this.writes.filter((w) => w.at >= at);
  }

  stop(): void {
    this.#sub.unsubscribe();
  }
}

// --- census -----------------------------------------------------------------------------------

export class CensusReader {
  #kv: Promise<KV> | undefined;
  constructor(readonly nc: NatsConnection) {}

  async read(rolloutId: string, hardwareClass: string): Promise<ClassCensus | null> {
    const kv = await (this.#kv ??= new Kvm(this.nc).open(KV_BUCKETS.rollouts));
    const entry = await kv.get(censusKey(rolloutId, hardwareClass));
    return entry?.operation === 'PUT' ? entry.json<ClassCensus>() : null;
  }
}

// --- control-plane /metrics -------------------------------------------------------------------

/** FleetService calls the control plane handled, by method (any code), and census rounds. */
export async function controlPlaneCounts(metricsUrl: string): Promise<{
  calls: Record<string, number>;
  censusRounds: number;
  censusSeconds: number;
}> {
  const text = await (await fetch(metricsUrl)).text();
  const calls: Record<string, number> = {};
  let censusRounds = 0;
  let censusSeconds = 0;
  for (const line of text.split('\n')) {
    const handled =
      /^edgeforge_grpc_server_handled_total\{([^}]*)\} ([\d.e+-]+)$/.exec(line) ?? undefined;
    if (handled) {
      const labels = handled[1]!;
      if (!labels.includes('grpc_service="edgeforge.v1.FleetService"')) continue;
      const method = /grpc_method="([^"]+)"/.exec(labels)?.[1] ?? '?';
      calls[method] = (calls[method] ?? 0) + Number(handled[2]);
      continue;
    }
    const count = /^edgeforge_census_round_seconds_count(?:\{[^}]*\})? ([\d.e+-]+)$/.exec(line);
    if (count) censusRounds += Number(count[1]);
    const sum = /^edgeforge_census_round_seconds_sum(?:\{[^}]*\})? ([\d.e+-]+)$/.exec(line);
    if (sum) censusSeconds += Number(sum[1]);
  }
  return { calls, censusRounds, censusSeconds };
}

// --- Temporal ---------------------------------------------------------------------------------

/** One write activity of a class workflow, as its history recorded it. */
export interface WriteActivity {
  activity: string;
  /** What it was asked to write: cohorts or device entries, and the state's kind. */
  target: string;
  /** Entries it says it wrote (its result), or the entries it was given when it returns none. */
  written: number;
}

export interface WorkflowSize {
  workflowId: string;
  status: string;
  historyLength: number;
  historySize: number | null;
  /** Events by type, e.g. ActivityTaskScheduled: 31. */
  eventTypes: Record<string, number>;
  /** Activities scheduled, by type. */
  activities: Record<string, number>;
  signalsReceived: number;
  writes: WriteActivity[];
}

type History = Awaited<ReturnType<WorkflowHandle['fetchHistory']>>;
type HistoryEvent = NonNullable<History['events']>[number];

const decode = (payloads: Payload[] | null | undefined): unknown[] =>
  (payloads ?? []).map((p) => defaultPayloadConverter.fromPayload(p));

/** `activityTaskScheduled` of an event: which of its `…EventAttributes` is set. */
function typeOf(e: HistoryEvent): string {
  for (const [k, v] of Object.entries(e)) {
    if (k.endsWith('EventAttributes') && v) {
      const name = k.replace(/EventAttributes$/, '');
      return name.charAt(0).toUpperCase() + name.slice(1);
    }
  }
  return 'Unknown';
}

export async function workflowSize(client: Client, workflowId: string): Promise<WorkflowSize> {
  const handle = client.workflow.getHandle(workflowId);
  const description = await handle.describe();
  const history = await handle.fetchHistory();
  const events = history.events ?? [];
  const eventTypes: Record<string, number> = {};
  const activities: Record<string, number> = {};
  const scheduled = new Map<string, { activity: string; input: unknown }>();
  const writes: WriteActivity[] = [];
  let signalsReceived = 0;
  for (const e of events) {
    const type = typeOf(e);
    eventTypes[type] = (eventTypes[type] ?? 0) + 1;
    if (type === 'WorkflowExecutionSignaled') signalsReceived++;
    const s = e.activityTaskScheduledEventAttributes;
    if (s) {
      const activity = s.activityType?.name ?? '?';
      activities[activity] = (activities[activity] ?? 0) + 1;
      scheduled.set(String(e.eventId), { activity, input: decode(s.input?.payloads)[0] });
    }
    const c = e.activityTaskCompletedEventAttributes;
    if (c) {
      const started = scheduled.get(String(c.scheduledEventId));
      if (started && WRITE_ACTIVITIES.has(started.activity)) {
        writes.push(writeOf(started.activity, started.input, decode(c.result?.payloads)[0]));
      }
    }
  }
  return {
    workflowId,
    status: description.status.name,
    historyLength: description.historyLength,
    historySize: description.historySize ?? null,
    eventTypes,
    activities,
    signalsReceived,
    writes,
  };
}

const WRITE_ACTIVITIES = new Set(['writeTracks', 'restoreTracks', 'writeDeviceStates']);

function writeOf(activity: string, input: unknown, result: unknown): WriteActivity {
  const i = (input ?? {}) as {
    cohorts?: number[];
    deviceIds?: string[];
    state?: { kind?: string } | null;
  };
  const r = (result ?? {}) as { written?: number; restored?: number; cleared?: number };
  const cohorts = i.cohorts ? `cohorts ${i.cohorts[0]}..${i.cohorts.at(-1)}` : '';
  if (activity === 'writeDeviceStates') {
    return {
      activity,
      target: `${i.deviceIds?.length ?? 0} device entries: ${i.state?.kind ?? 'delete'}`,
      written: i.deviceIds?.length ?? 0,
    };
  }
  if (activity === 'restoreTracks') {
    return {
      activity,
      target: `${cohorts} back to the earlier release`,
      written: (r.restored ?? 0) + (r.cleared ?? 0),
    };
  }
  return { activity, target: `${cohorts}: run`, written: r.written ?? i.cohorts?.length ?? 0 };
}
