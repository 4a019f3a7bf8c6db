import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';

/** Every command a user can type, and what its --help must mention. */
const COMMANDS: [string[], RegExp[]][] = [
  [[], [/Usage: edgeforge/, /up\b/, /demo\b/, /rollout\b/, /fleet\b/, /agent\b/]],
  [['up'], [/Usage: edgeforge up/, /--no-ui/]],
  [['demo'], [/Usage: edgeforge demo/, /--quick/, /--keep/, /--fresh-teacher/, /Exit codes:/]],
  [['rollout'], [/start \[options\] <spec>/, /status/, /watch/, /list/, /cancel/, /Exit codes:/]],
  [
    ['rollout', 'start'],
    [/<spec>/, /--watch/, /--json/, /--out <dir>/, /3 +services unreachable/],
  ],
  [
    ['rollout', 'status'],
    [/<rolloutId>/, /--json/, /--out <dir>/, /4 +the rollout partially/],
  ],
  [
    ['rollout', 'watch'],
    [/<rolloutId>/, /--interval <seconds>/, /Ctrl-C stops watching/],
  ],
  [
    ['rollout', 'list'],
    [/--limit <n>/, /--json/],
  ],
  [
    ['rollout', 'cancel'],
    [/<rolloutId>/, /--reason <text>/],
  ],
  [['fleet'], [/ls/, /show/]],
  [
    ['fleet', 'ls'],
    [/--class <hardwareClass>/, /--json/],
  ],
  [['fleet', 'show'], [/<deviceId>/]],
  [
    ['agent'],
    [/--control-plane <host:port>/, /--enrollment-token-file <file>/, /--profile <file>/],
  ],
];

describe.concurrent('edgeforge --help', () => {
  it.each(COMMANDS)('edgeforge %j --help', async (args, expected) => {
    const r = await runCli([...args, '--help']);
    expect(r.code, r.stderr).toBe(0);
    for (const pattern of expected) expect(r.stdout).toMatch(pattern);
  });

  it('`help <command>` says the same as `<command> --help`', async () => {
    const [a, b] = await Promise.all([runCli(['help', 'rollout']), runCli(['rollout', '--help'])]);
    expect(a.code).toBe(0);
    expect(a.stdout).toBe(b.stdout);
  });
});
