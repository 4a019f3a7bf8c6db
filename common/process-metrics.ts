import { collectDefaultMetrics, Registry, type Metric } from 'prom-client';

/**
 * prom-client's default process and Node.js metrics, less the three gauges it names with a
 * `_total` suffix (nodejs_active_{handles,requests,resources}_total), which Prometheus's lint
 * (`promtool check metrics`) rejects: the same numbers by type are in
 * nodejs_active_{handles,requests,resources}, so `sum()` of those replaces them.
 */
export function collectProcessMetrics(register: Registry, prefix = ''): void {
  const defaults = new Registry();
  collectDefaultMetrics({ register: defaults, prefix });
  // The registry's own metric objects, typed by prom-client as plain descriptions.
  for (const metric of defaults.getMetricsAsArray() as unknown as Metric[]) {
    const { name, type } = metric as unknown as { name: string; type: string };
    if (name.endsWith('_total') && type !== 'counter') continue;
    register.registerMetric(metric);
  }
}
