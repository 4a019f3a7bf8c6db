import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../../services/stack/index.js';

export const GRAFANA_DIR = join(REPO_ROOT, 'deploy/grafana');
export const DASHBOARD_DIR = join(GRAFANA_DIR, 'dashboards');

/** One PromQL query of a dashboard: a panel's target, a template variable or an annotation. */
export interface DashboardQuery {
  dashboard: string;
  kind: 'panel' | 'variable' | 'annotation';
  /** `<dashboard uid>/<panel title>`, `<uid>/$<variable>` or `<uid>/annotation <name>`. */
  id: string;
  expr: string;
}

interface Target {
  refId?: string;
  expr?: string;
  datasource?: { uid?: string };
}

export interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { type?: string; uid?: string };
  targets?: Target[];
  panels?: Panel[];
}

export interface Dashboard {
  uid: string;
  title: string;
  panels: Panel[];
  templating?: { list: { name: string; query?: { query?: string } | string }[] };
  annotations?: {
    list: { name: string; expr?: string; datasource?: { uid?: string }; builtIn?: number }[];
  };
}

export function loadDashboards(): { file: string; dashboard: Dashboard }[] {
  return readdirSync(DASHBOARD_DIR)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((file) => ({
      file,
      dashboard: JSON.parse(readFileSync(join(DASHBOARD_DIR, file), 'utf8')) as Dashboard,
    }));
}

/** Panels, rows' nested panels included. */
export function panelsOf(dashboard: Dashboard): Panel[] {
  return dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
}

export function dashboardQueries(): DashboardQuery[] {
  const queries: DashboardQuery[] = [];
  for (const { dashboard } of loadDashboards()) {
    const uid = dashboard.uid;
    for (const panel of panelsOf(dashboard)) {
      for (const target of panel.targets ?? []) {
        if (target.expr) {
          const id = `${uid}/${panel.title}`;
          queries.push({ dashboard: uid, kind: 'panel', id, expr: target.expr });
        }
      }
    }
    for (const variable of dashboard.templating?.list ?? []) {
      const q = typeof variable.query === 'string' ? variable.query : variable.query?.query;
      if (q)
        queries.push({ dashboard: uid, kind: 'variable', id: `${uid}/$${variable.name}`, expr: q });
    }
    for (const annotation of dashboard.annotations?.list ?? []) {
      if (annotation.expr) {
        const id = `${uid}/annotation ${annotation.name}`;
        queries.push({ dashboard: uid, kind: 'annotation', id, expr: annotation.expr });
      }
    }
  }
  return queries;
}

/**
 * The query Grafana would send, for an instant query now: template variables at "All" (`.*`),
 * Grafana's interval variables at values that suit a 1 s scrape interval, and `label_values()`
 * (a variable query) as the PromQL that returns the same label values.
 */
export function asPromQL(expr: string, rangeSeconds: number): string {
  const labelValues = /^label_values\((.+),\s*([A-Za-z_][A-Za-z0-9_]*)\)$/.exec(expr.trim());
  const promql = labelValues ? `count by (${labelValues[2]}) (${labelValues[1]})` : expr;
  return promql
    .replaceAll('$__rate_interval', '15s')
    .replaceAll('$__interval', '5s')
    .replaceAll('$__range', `${Math.ceil(rangeSeconds)}s`)
    .replace(/\$\{?[A-Za-z_][A-Za-z0-9_]*\}?/g, '.*');
}

/** The metric names a query reads (every edgeforge metric starts with edgeforge_; and `up`). */
export function metricNames(expr: string): string[] {
  return [
    ...new Set([...expr.matchAll(/\b(edgeforge_[a-z0-9_]+|up)\b(?!\s*[=!~(])/g)].map((m) => m[1]!)),
  ];
}
