import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { runCli } from '../helpers/cli.js';

describe('edgeforge agent: mistakes a user makes', () => {
  it('names every missing setting with its flag and variable (exit 2)', async () => {
    const r = await runCli(['agent'], {
      EDGEFORGE_CONTROL_PLANE: '',
      EDGEFORGE_ENROLLMENT_TOKEN: '',
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--control-plane \/ EDGEFORGE_CONTROL_PLANE is required/);
    expect(r.stderr).toMatch(
      /--enrollment-token-file \/ EDGEFORGE_ENROLLMENT_TOKEN_FILE \(or EDGEFORGE_ENROLLMENT_TOKEN\) is required/,
    );
  });

  it('refuses the enrollment token on the command line, where ps shows it (exit 2)', async () => {
    const r = await runCli(['agent', '--control-plane', '127.0.0.1:1', '--enrollment-token', 'x']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--enrollment-token puts the fleet secret in the process list/);
    expect(r.stderr).not.toMatch(/\bx\b.*secret/);
  });

  it('says which port is taken and how to get a free one (exit 5)', async () => {
    const taken = createServer().listen(0, '127.0.0.1');
    await once(taken, 'listening');
    onTestFinished(() => new Promise<void>((resolve) => taken.close(() => resolve())));
    const port = (taken.address() as AddressInfo).port;
    const dir = await mkdtemp(join(tmpdir(), 'edgeforge-agent-cli-'));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    const tokenFile = join(dir, 'enrollment-token');
    await writeFile(tokenFile, 'token-0123456789abcdef\n', { mode: 0o600 });
    const r = await runCli([
      'agent',
      '--control-plane',
      '127.0.0.1:1',
      '--enrollment-token-file',
      tokenFile,
      '--data-dir',
      dir,
      '--metrics',
      `127.0.0.1:${port}`,
      '--serve',
      '127.0.0.1:0',
    ]);
    expect(r.code, r.stderr).toBe(5);
    expect(r.stderr).toMatch(
      new RegExp(
        `127\\.0\\.0\\.1:${port} is in use by another process.*--metrics 127\\.0\\.0\\.1:0`,
        's',
      ),
    );
  });
});
