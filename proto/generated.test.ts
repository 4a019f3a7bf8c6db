import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const PROTO_DIR = fileURLToPath(new URL('./', import.meta.url));
const BUF = fileURLToPath(new URL('../node_modules/.bin/buf', import.meta.url));

function filesUnder(dir: string): Map<string, string> {
  const files = new Map<string, string>();
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    files.set(relative(dir, path), readFileSync(path, 'utf8'));
  }
  return files;
}

describe('proto contracts', () => {
  const scratch = mkdtempSync(join(tmpdir(), 'edgeforge-proto-'));
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  it('pass buf lint', () => {
    expect(() => execFileSync(BUF, ['lint'], { cwd: PROTO_DIR, stdio: 'pipe' })).not.toThrow();
  });

  it('match the committed generated code (run `npm run proto:gen` after editing a .proto)', () => {
    execFileSync(BUF, ['generate', '--output', scratch], { cwd: PROTO_DIR, stdio: 'pipe' });
    const fresh = filesUnder(join(scratch, 'gen'));
    const committed = filesUnder(join(PROTO_DIR, 'gen'));
    expect([...committed.keys()].sort()).toEqual([...fresh.keys()].sort());
    for (const [path, content] of fresh) {
      expect(committed.get(path), `proto/gen/${path} is stale`).toBe(content);
    }
  });
});
