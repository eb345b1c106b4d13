/**
 * `agent-incident-mcp demo`: the two-command tour. Starts the embedded sandbox, sets one agent into the
 * runaway retry loop of the SPEC (escrows of $150 at 30 a minute), and drives the real MCP server through
 * the SDK client (in memory) as a host would: detect → contain → ground truth → post-mortem.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import { startApp } from './app.js';
import { loadConfig } from './config.js';
import { silentLogger } from './logger.js';
import { createServer } from './server.js';

interface Io {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
}

export async function runDemo(argv: string[], io: Io): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { agents: { type: 'string' }, 'latency-ms': { type: 'string' }, minutes: { type: 'string' } },
    strict: true,
  });
  const say = (s = '') => io.stdout(`${s}\n`);
  const dataDir = mkdtempSync(join(tmpdir(), 'agent-incident-demo-'));
  const config = loadConfig({
    env: {},
    flags: {
      dataDir,
      logLevel: 'silent',
      sandbox: {
        enabled: true,
        agents: Number(values.agents ?? 40),
        latencyMs: Number(values['latency-ms'] ?? 50),
        timeScale: 1,
      },
    },
  });
  const app = await startApp(config, silentLogger());
  const sandbox = app.sandbox!;
  const { server } = createServer({ ops: app.ops, logger: silentLogger() });
  const [a, b] = InMemoryTransport.createLinkedPair();
  const client = new Client({ name: 'demo', version: '1' });
  await Promise.all([server.connect(b), client.connect(a)]);
  try {
    const agent = sandbox.fleet[7] ?? sandbox.fleet[0]!;
    say(
      `Sandbox gateway at ${sandbox.url}: ${sandbox.fleet.length} agents sharing wallet ${sandbox.sharedWallet}.`,
    );
    sandbox.startScenario('runaway_spending', agent, { rate_per_min: 30, amount: 150 });
    const minutes = Number(values.minutes ?? 2);
    await sandbox.advance(minutes * 60_000);
    const before = sandbox.groundTruth(agent);
    say(
      `\n02:47 — ${agent} enters a retry loop: ${minutes} simulated minutes later it holds ${before.held_escrows} escrows (${before.held_amount} CREDITS locked).`,
    );

    const detected = (await client.callTool({
      name: 'detect_anomalies',
      arguments: { agent_ids: [agent] },
    })) as unknown as {
      structuredContent: { anomalies: { signal: string; priority: string; summary: string; tier: string }[] };
    };
    say('\n$ detect_anomalies');
    for (const an of detected.structuredContent.anomalies)
      say(`  ${an.priority} ${an.signal} → ${an.tier}: ${an.summary}`);

    const contained = (await client.callTool({
      name: 'contain_agent',
      arguments: { agent_id: agent, reason: 'runaway retry loop (demo)' },
    })) as unknown as { structuredContent: Record<string, unknown>; content: { text: string }[] };
    say('\n$ contain_agent');
    say(`  ${contained.content[0]?.text}`);
    for (const step of (contained.structuredContent.steps as {
      action: string;
      success: boolean;
      duration_ms: number;
    }[]) ?? []) {
      say(`  ${step.success ? 'ok  ' : 'FAIL'} ${step.action} (${step.duration_ms} ms)`);
    }
    const after = sandbox.groundTruth(agent);
    say(
      `\nGround truth from the sandbox: frozen=${after.frozen}, caps=${after.daily_cap}/${after.monthly_cap}, held escrows=${after.held_escrows}, balance=${after.balance}.`,
    );

    const pm = (await client.callTool({
      name: 'run_postmortem',
      arguments: { incident_id: contained.structuredContent.incident_id },
    })) as unknown as { content: { text: string }[] };
    say(`\n$ run_postmortem\n  ${pm.content[0]?.text}`);
    const md = await client.readResource({
      uri: `incident://${String(contained.structuredContent.incident_id)}/postmortem`,
    });
    const text = (md.contents[0] as { text?: string } | undefined)?.text ?? '';
    say(`\n${text.split('\n').slice(0, 30).join('\n')}\n…`);
    say('\nNext: add it to Claude Desktop with --sandbox (see the README) and ask it to triage an agent.');
    return after.frozen && after.held_escrows === 0 ? 0 : 1;
  } finally {
    await client.close().catch(() => undefined);
    await app.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}
