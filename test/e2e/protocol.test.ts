/**
 * Malformed requests over the real stdio transport (issue 9, finding 7; finding 12's missing resource):
 * each one gets a JSON-RPC error with the request's id when it has a usable one, never silence, and the
 * server keeps answering afterwards.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type SpawnedSandbox, type SpawnedServer, spawnSandbox, spawnServer } from '../helpers/spawn.js';

const children: ChildProcess[] = [];
const dir = mkdtempSync(join(tmpdir(), 'aim-protocol-'));
let sandbox: SpawnedSandbox;
let server: SpawnedServer;

beforeAll(async () => {
  sandbox = await spawnSandbox(['--agents', '3', '--time-scale', '0'], children);
  server = spawnServer(sandbox.info, dir, children);
  await server.ready;
});
afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

/** Sends one raw line and waits for the answer carrying `id` (or, with id null, the next null-id answer). */
async function answer(line: string, id: string | number | null): Promise<Record<string, unknown>> {
  const seen = server.messages.length;
  server.raw(line);
  const deadline = Date.now() + 5_000;
  while (Date.now() < deadline) {
    const hit = server.messages.slice(seen).find((m) => m.id === id && ('error' in m || 'result' in m));
    if (hit) return hit;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`no answer to ${line.slice(0, 120)}; stderr:\n${server.stderr()}`);
}

const req = (id: unknown, method: unknown, params?: unknown) =>
  JSON.stringify({ jsonrpc: '2.0', id, method, ...(params === undefined ? {} : { params }) });

describe('every malformed request is answered (stdio)', () => {
  it.each([
    ['null', null],
    ['an array', []],
    ['a string', 'x'],
    ['a number', 5],
  ])('tools/call with params %s gets -32602 with its id', async (_label, params) => {
    const id = `p-${_label}`;
    const r = await answer(req(id, 'tools/call', params), id);
    expect(r.error).toMatchObject({
      code: -32602,
      message: expect.stringMatching(/params must be an object/),
    });
  });

  it('params of the wrong shape for a known method get -32602 naming the field', async () => {
    expect((await answer(req(11, 'tools/call', { name: 5 }), 11)).error).toMatchObject({ code: -32602 });
    expect((await answer(req(12, 'tools/call', { name: 'x', arguments: [] }), 12)).error).toMatchObject({
      code: -32602,
      message: expect.stringContaining('arguments'),
    });
    expect((await answer(req(13, 'resources/read', {}), 13)).error).toMatchObject({ code: -32602 });
    expect((await answer(req(14, 'resources/read', { uri: 'not a uri' }), 14)).error).toMatchObject({
      code: -32602,
    });
    expect((await answer(req(15, 'prompts/get', { name: 7 }), 15)).error).toMatchObject({ code: -32602 });
  });

  it('messages that are not JSON-RPC get -32600 (with the id when usable), text that is not JSON -32700', async () => {
    expect((await answer(req({ a: 1 }, 'ping'), null)).error).toMatchObject({ code: -32600 });
    expect((await answer(req(1.5, 'ping'), null)).error).toMatchObject({ code: -32600 });
    expect(
      (await answer(JSON.stringify({ jsonrpc: '1.0', id: 21, method: 'ping' }), 21)).error,
    ).toMatchObject({ code: -32600 });
    expect((await answer(req(22, 42), 22)).error).toMatchObject({ code: -32600 });
    expect(
      (await answer(JSON.stringify({ jsonrpc: '2.0', id: 23, method: 'ping', extra: 1 }), 23)).error,
    ).toMatchObject({ code: -32600 });
    expect((await answer('[1, 2, 3]', null)).error).toMatchObject({ code: -32600 });
    expect((await answer('"just a string"', null)).error).toMatchObject({ code: -32600 });
    expect((await answer('{"jsonrpc": "2.0", "id": 24, "method": ', null)).error).toMatchObject({
      code: -32700,
    });
    expect((await answer(req(25, 'no/such/method', {}), 25)).error).toMatchObject({ code: -32601 });
  });

  it('a line longer than the limit is skipped and answered; the server goes on', async () => {
    const huge = req(31, 'tools/call', {
      name: 'detect_anomalies',
      arguments: { x: 'y'.repeat(5 * 1024 * 1024) },
    });
    expect((await answer(huge, null)).error).toMatchObject({ code: -32600 });
    expect((await answer(req(32, 'ping', {}), 32)).result).toEqual({});
  });

  it('a missing resource is "resource not found" (-32002), not an internal error', async () => {
    const r = await answer(req(41, 'resources/read', { uri: 'incident://inc_doesnotexist' }), 41);
    expect(r.error).toMatchObject({ code: -32002, message: expect.stringContaining('inc_doesnotexist') });
    const pm = await answer(req(42, 'resources/read', { uri: 'incident://inc_doesnotexist/postmortem' }), 42);
    expect(pm.error).toMatchObject({ code: -32002 });
    const rb = await answer(req(43, 'resources/read', { uri: 'runbook://no_such_runbook' }), 43);
    expect(rb.error).toMatchObject({ code: -32002 });
  });

  it('after all of it the server still answers, and stdout carried JSON-RPC only', async () => {
    const r = await server.rpc('tools/call', { name: 'list_incidents', arguments: {} });
    expect((r.result as { isError?: boolean }).isError).toBeFalsy();
    expect(server.child.exitCode).toBeNull();
    for (const m of server.messages) expect(m.jsonrpc).toBe('2.0');
  });
});
