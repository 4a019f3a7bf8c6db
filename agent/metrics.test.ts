import { afterEach, describe, expect, it } from 'vitest';
import { AgentMetrics } from './metrics.js';

describe('AgentMetrics', () => {
  const open: AgentMetrics[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((m) => m.close()));
  });

  it('serves its own registry on /metrics and nothing else', async () => {
    const metrics = new AgentMetrics('9.9.9');
    open.push(metrics);
    const url = await metrics.listen('127.0.0.1:0');
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    metrics.setDevice('d-1', 'x86_64-avx2-nofp16-cpu-8g');
    metrics.setDevice('d-1', 'x86_64-avx2-nofp16-cpu-16g');

    const response = await fetch(url);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await response.text();
    // Relabelling replaces the info series instead of adding one.
    expect(text.match(/^edgeforge_agent_info\{.*$/gm)).toEqual([
      'edgeforge_agent_info{device_id="d-1",hardware_class="x86_64-avx2-nofp16-cpu-16g",agent_version="9.9.9"} 1',
    ]);
    expect((await fetch(url.replace('/metrics', '/'))).status).toBe(404);
  });

  it('says which address it could not bind', async () => {
    const first = new AgentMetrics('9.9.9');
    open.push(first);
    const port = new URL(await first.listen('127.0.0.1:0')).port;
    const second = new AgentMetrics('9.9.9');
    await expect(second.listen(`127.0.0.1:${port}`)).rejects.toThrow(
      `cannot serve /metrics on 127.0.0.1:${port}: listen EADDRINUSE`,
    );
  });
});
