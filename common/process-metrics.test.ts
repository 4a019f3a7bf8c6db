import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { collectProcessMetrics } from './process-metrics.js';

describe('collectProcessMetrics', () => {
  it("collects prom-client's defaults without gauges named like counters", async () => {
    const register = new Registry();
    collectProcessMetrics(register, 'x_');
    const text = await register.metrics();
    expect(text).toContain('x_process_cpu_seconds_total');
    expect(text).toContain('x_nodejs_active_handles');
    expect(text).toContain('# TYPE x_nodejs_eventloop_lag_p99_seconds gauge');
    const gaugesNamedTotal = [...text.matchAll(/^# TYPE (\S+_total) (\S+)$/gm)].filter(
      ([, , type]) => type !== 'counter',
    );
    expect(gaugesNamedTotal).toEqual([]);
  });
});
