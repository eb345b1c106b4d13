/**
 * The README's HTTP example on the sandbox, run as written by bash (only the port is swapped for a free
 * one, so the test never collides with a server already on 3333): the server starts, answers an
 * authenticated initialize, and is stopped by the block's own `kill %1`.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

it("the README's sandbox HTTP block answers initialize when pasted into a shell", async () => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const block = [...readme.matchAll(/```sh\n([\s\S]*?)```/g)]
    .map((m) => m[1]!)
    .find((b) => b.includes('--sandbox --transport http'));
  expect(block, 'the README has a sandbox HTTP example').toBeDefined();
  const port = await freePort();
  const script = block!.replaceAll('3333', String(port));
  const out = await new Promise<string>((resolve, reject) =>
    execFile('bash', ['-c', `set -m\n${script}`], { cwd: ROOT, timeout: 60_000 }, (err, stdout, stderr) =>
      err ? reject(new Error(`${err.message}\n${stderr.slice(-2000)}`)) : resolve(stdout),
    ),
  );
  expect(out).toContain('"serverInfo":{"name":"agent-incident-mcp"');
}, 90_000);
