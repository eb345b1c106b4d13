/**
 * The approval page in a real browser (issue 9, finding 4 and "a confirmation no host can auto-answer"):
 * an operator rejects and approves fleet shutdowns in headless Chromium, while an MCP client that
 * auto-accepts every elicitation (form and URL) confirms nothing by itself. Debian's chromium, driven by
 * playwright-core; under CI=true a missing browser fails the test rather than skipping it.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ElicitRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { type BrowserContext, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Fixture, startFixture } from '../helpers/fixture.js';

const CHROMIUM = '/usr/bin/chromium';
const SECRET = 'operator-secret-0123456789';
const available = existsSync(CHROMIUM);

/** A POST the way a script (not the page) would send it; returns the status. */
function post(url: string, body: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    });
    req.on('response', (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe.skipIf(!available && !process.env.CI)('approval page in headless Chromium', () => {
  let f: Fixture;
  let browser: BrowserContext;
  let profile: string;
  const urls: string[] = [];
  const formAsks: string[] = [];
  const visited: string[] = [];

  beforeAll(async () => {
    if (!available) throw new Error(`${CHROMIUM} is missing: apt-get install chromium (see .ci/run)`);
    f = await startFixture({
      agents: 4,
      operatorSecret: SECRET,
      // A host that says yes to everything, in both elicitation modes.
      clientCapabilities: { elicitation: { form: {}, url: {} } },
    });
    f.client.setRequestHandler(ElicitRequestSchema, async (req) => {
      const p = req.params as { mode?: string; url?: string; message: string };
      if (p.mode === 'url') {
        urls.push(String(p.url));
        return { action: 'accept' };
      }
      formAsks.push(p.message);
      return { action: 'accept', content: { confirm: true, typed_count: String(f.sandbox.fleet.length) } };
    });
    profile = mkdtempSync(join(tmpdir(), 'aim-chromium-'));
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    browser.on('request', (r) => visited.push(r.url()));
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await f?.close();
    if (profile) rmSync(profile, { recursive: true, force: true });
  });

  const frozen = () => f.sandbox.fleet.filter((a) => f.sandbox.groundTruth(a).frozen);

  it('an auto-accepting host cannot confirm; the operator rejects on the page; nothing changes', async () => {
    const subset = f.sandbox.fleet.slice(0, 2);
    const r = await f.call('fleet_shutdown', { reason: 'drill: reject me', agent_ids: subset });
    expect(r.structuredContent).toMatchObject({ status: 'approval_pending', agent_count: 2 });
    const digest = r.structuredContent.digest as string;
    expect(formAsks).toEqual([]);
    // The link went to the host by URL elicitation; the model's result holds neither it nor the secret.
    await expect.poll(() => urls.length).toBe(1);
    const url = urls[0]!;
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/approvals\/apr_/);
    expect(JSON.stringify(r)).not.toContain(url.split('/approvals/')[1]!);
    expect(url).not.toContain(SECRET);
    // The host accepted the URL elicitation: still nothing is confirmed.
    const again = await f.call('fleet_shutdown', { reason: 'drill: reject me', agent_ids: subset });
    expect(again.structuredContent.status).toBe('approval_pending');
    expect(frozen()).toEqual([]);

    const page = await browser.newPage();
    await page.goto(url);
    await page.fill('input[name=secret]', 'not-the-operator-secret');
    await page.click('button[type=submit]');
    await expect.poll(() => page.textContent('[role=alert]')).toContain('Wrong operator secret');
    await page.fill('input[name=secret]', SECRET);
    await page.click('button[type=submit]');
    await page.waitForSelector('#digest');
    expect(await page.textContent('#digest')).toBe(digest);
    expect(await page.textContent('#agent-count')).toBe('2');
    expect(await page.textContent('#agents')).toBe(subset.join(', '));
    expect(await page.textContent('#at-risk')).toMatch(/^\d+\.\d{2} CREDITS$/);
    await page.click('button[value=reject]');
    await expect.poll(() => page.textContent('#status')).toBe('rejected');
    await page.close();

    const after = await f.call('fleet_shutdown', { reason: 'drill: reject me', agent_ids: subset });
    expect(after.structuredContent.status).toBe('rejected');
    expect(frozen()).toEqual([]);
  }, 120_000);

  it('a decision needs the session and the page’s own form token; another origin is refused', async () => {
    const r = await f.call('fleet_shutdown', { reason: 'drill: forged', agent_ids: [f.sandbox.fleet[3]!] });
    expect(r.structuredContent.status).toBe('approval_pending');
    const url = urls.at(-1)!;
    const approval = f.ops.acting.book.get(url.split('/approvals/')[1]!)!;
    const body = `decision=approve&digest=${approval.full_digest}`;
    const [cookie] = await browser.cookies(url);
    expect(cookie).toMatchObject({ httpOnly: true, sameSite: 'Strict' });
    expect(await post(`${url}/decide`, body)).toBe(401);
    const session = { cookie: `${cookie!.name}=${cookie!.value}` };
    expect(await post(`${url}/decide`, `${body}&form_token=guessed`, session)).toBe(403);
    expect(await post(`${url}/decide`, body, { ...session, origin: 'http://evil.example' })).toBe(403);
    expect(await post(`${url}/decide`, body, { ...session, host: 'evil.example' })).toBe(421);
    expect(f.ops.acting.book.get(approval.id)?.status).toBe('pending');
  });

  it('the operator approves on the page; the same call then runs once', async () => {
    const r = await f.call('fleet_shutdown', { reason: 'drill: approve me' });
    expect(r.structuredContent).toMatchObject({ status: 'approval_pending', agent_count: 4 });
    const url = urls.at(-1)!;
    const page = await browser.newPage();
    // Signed in already (the session cookie): straight to the request.
    await page.goto(url);
    expect(await page.textContent('#digest')).toBe(r.structuredContent.digest);
    expect(await page.textContent('#agent-count')).toBe('4');
    await page.click('button[value=approve]');
    await expect.poll(() => page.textContent('#status')).toBe('approved');
    await page.close();

    const ran = await f.call('fleet_shutdown', { reason: 'drill: approve me' });
    expect(ran.structuredContent).toMatchObject({ status: 'executed', digest: r.structuredContent.digest });
    expect(frozen().sort()).toEqual([...f.sandbox.fleet].sort());
    // Single use: the next identical call asks anew.
    const next = await f.call('fleet_shutdown', { reason: 'drill: approve me' });
    expect(next.structuredContent.status).toBe('approval_pending');
    expect(formAsks).toEqual([]);
    // The secret never travelled in a URL.
    expect(visited.length).toBeGreaterThan(0);
    for (const u of visited) expect(u).not.toContain(SECRET);
  }, 120_000);
});
