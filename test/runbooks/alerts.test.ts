import { describe, expect, it } from 'vitest';
import { type Alert, pagerDutyEvent, slackMessage } from '../../src/runbooks/alerts.js';

const alert: Alert = {
  level: 'page',
  priority: 'P0',
  severity: 'critical',
  agent_id: 'agent-07',
  signal: 'escrow_burst',
  title: 'Runaway spending: contained agent-07; 312 escrows cancelled, 46800.00 CREDITS recovered',
  actions: ['freeze_wallet', 'cancel_held_escrows'],
  incident_id: 'inc_abc123',
};

describe('alert formats', () => {
  it('PagerDuty Events v2: trigger with severity, dedup key and the facts', () => {
    const e = pagerDutyEvent(alert, Date.UTC(2026, 10, 24, 2, 47), 'rk');
    expect(e).toMatchObject({ routing_key: 'rk', event_action: 'trigger', dedup_key: 'inc_abc123' });
    expect(e.payload).toMatchObject({
      severity: 'critical',
      source: 'agent-07',
      timestamp: '2026-11-24T02:47:00.000Z',
    });
    expect((e.payload as { custom_details: Record<string, unknown> }).custom_details).toMatchObject({
      incident_id: 'inc_abc123',
      actions: alert.actions,
    });
  });

  it('Slack: text fallback plus blocks naming severity, incident and actions', () => {
    const m = slackMessage(alert);
    expect(m.text).toContain('P0 escrow_burst on agent-07');
    expect(JSON.stringify(m.blocks)).toContain('inc_abc123');
    expect(JSON.stringify(m.blocks)).toContain('cancel_held_escrows');
  });
});
