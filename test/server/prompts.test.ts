/**
 * Prompts and instructions follow the mode (issue 9, finding 12): a read-only server never tells the model
 * to call a tool it does not list (the triage prompt pointed to run_runbook), and says what to do instead.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TOOLS } from '../../src/tools/index.js';
import { type Fixture, startFixture } from '../helpers/fixture.js';

const ALL_NAMES = TOOLS.map((t) => t.name);
const named = (text: string) => ALL_NAMES.filter((n) => new RegExp(`\\b${n}\\b`).test(text));

async function promptTexts(f: Fixture): Promise<string[]> {
  const triage = await f.client.getPrompt({ name: 'triage_incident', arguments: { agent_id: 'agent-00' } });
  const pm = await f.client.getPrompt({
    name: 'postmortem_review',
    arguments: { incident_id: 'inc_abcd1234' },
  });
  const text = (p: typeof triage) =>
    p.messages.map((m) => (m.content.type === 'text' ? m.content.text : '')).join('\n');
  return [text(triage), text(pm), f.client.getInstructions() ?? ''];
}

describe('prompts name only listed tools', () => {
  let f: Fixture;
  let ro: Fixture;
  beforeAll(async () => {
    f = await startFixture({ agents: 2 });
    ro = await startFixture({ sandbox: f.sandbox, config: (c) => ({ ...c, readOnly: true }) });
  });
  afterAll(async () => {
    await ro?.close();
    await f?.close();
  });

  it('read-only: no prompt or instruction points to a tool that is not listed, and triage says how to act', async () => {
    const listed = (await ro.client.listTools()).tools.map((t) => t.name);
    const [triage, pm, instructions] = await promptTexts(ro);
    for (const text of [triage!, pm!, instructions!])
      for (const name of named(text)) expect(listed, `${name} in: ${text.slice(0, 200)}`).toContain(name);
    expect(triage).not.toMatch(/run_runbook|contain_agent|recover_agent|fleet_shutdown/);
    expect(triage).toMatch(/read-only/);
    expect(triage).toMatch(/without --read-only/);
    expect(instructions).toMatch(/read-only/);
  });

  it('default: the triage runs the runbook with a dry run first', async () => {
    const [triage, , instructions] = await promptTexts(f);
    expect(triage).toMatch(/run_runbook with dry_run: true/);
    expect(triage).toMatch(/recover_agent/);
    expect(instructions).toMatch(/contain_agent/);
  });
});
