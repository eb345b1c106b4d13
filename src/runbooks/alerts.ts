/**
 * Alerts: every page or chat alert goes to stderr (pino), to connected MCP clients as a logging
 * notification, and to an optional outbound webhook in Slack or PagerDuty Events v2 format. Each alert
 * carries severity, agent, signal, actions taken and the incident id, and is recorded in the store.
 * Sending never blocks or fails the response that raised it.
 */

import { request } from 'undici';
import type { Config } from '../config.js';
import { centsToMoney } from '../greenhelix/money.js';
import type { IncidentStore } from '../incidents/index.js';
import type { Logger } from '../logger.js';
import type { Clock } from '../util/clock.js';

export type AlertLevel = 'page' | 'chat' | 'log';

export interface Alert {
  level: AlertLevel;
  priority: 'P0' | 'P1' | 'P2' | 'P3';
  severity: string;
  agent_id: string;
  signal: string;
  title: string;
  actions: string[];
  incident_id?: string | undefined;
  tier?: string | undefined;
  /** Extra facts (counts, amounts, an approval page's address on the operator channel); never secrets. */
  details?: Record<string, unknown> | undefined;
  /**
   * For the operator's channels only (stderr, the alert webhook), never MCP notifications, which a model
   * may read: approval requests carry the approval page's address.
   */
  operator_only?: boolean | undefined;
}

export type Notifier = (
  level: 'info' | 'warning' | 'error' | 'critical' | 'alert' | 'emergency',
  data: unknown,
) => void;

/** Where alerts go. The MCP notifier is attached when a server connects. */
export class AlertSink {
  private notifiers: Notifier[] = [];
  readonly sent: Alert[] = [];

  constructor(
    private readonly deps: { config: Config; store: IncidentStore; logger: Logger; clock: Clock },
  ) {}

  /** Adds a sink for MCP logging notifications; returns the function that removes it. */
  attach(notifier: Notifier): () => void {
    this.notifiers.push(notifier);
    return () => {
      this.notifiers = this.notifiers.filter((n) => n !== notifier);
    };
  }

  /** Records and fans out an alert; resolves when every sink has been tried. */
  async send(raw: Alert): Promise<void> {
    const { store, logger, clock, config } = this.deps;
    // Evidence carries cents internally; every sink shows amounts as Money.
    const alert: Alert = raw.details
      ? { ...raw, details: centsToMoney(raw.details) as Record<string, unknown> }
      : raw;
    const at = clock.now();
    this.sent.push(alert);
    const sinks = [
      'stderr',
      ...(this.notifiers.length && !alert.operator_only ? ['mcp'] : []),
      ...(config.watch.alertWebhookUrl ? [config.watch.alertFormat] : []),
    ];
    try {
      store.recordAlert({
        incident_id: alert.incident_id ?? null,
        agent_id: alert.agent_id,
        signal: alert.signal,
        severity: alert.severity,
        priority: alert.priority,
        tier: alert.tier ?? alert.level,
        actions: alert.actions,
        sinks,
        at,
      });
    } catch (e) {
      logger.error({ err: e }, 'could not record alert');
    }
    const line = {
      alert: alert.level,
      priority: alert.priority,
      agent_id: alert.agent_id,
      signal: alert.signal,
      incident_id: alert.incident_id,
      actions: alert.actions,
      details: alert.details,
    };
    if (alert.priority === 'P0' || alert.priority === 'P1') logger.error(line, alert.title);
    else logger.warn(line, alert.title);
    const mcpLevel = alert.priority === 'P0' ? 'critical' : alert.priority === 'P1' ? 'error' : 'warning';
    for (const n of alert.operator_only ? [] : this.notifiers) {
      try {
        n(mcpLevel, { ...line, title: alert.title });
      } catch {
        // A disconnected client must not stop the other sinks.
      }
    }
    if (config.watch.alertWebhookUrl) await this.postWebhook(config.watch.alertWebhookUrl, alert, at);
  }

  private async postWebhook(url: string, alert: Alert, at: number): Promise<void> {
    const body =
      this.deps.config.watch.alertFormat === 'pagerduty'
        ? pagerDutyEvent(alert, at, this.deps.config.watch.pagerdutyRoutingKey)
        : slackMessage(alert);
    try {
      const res = await request(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
        headersTimeout: 5_000,
        bodyTimeout: 5_000,
      });
      await res.body.dump();
      if (res.statusCode >= 300)
        this.deps.logger.warn({ status: res.statusCode }, 'alert webhook refused the alert');
    } catch (e) {
      this.deps.logger.warn({ err: (e as Error).message }, 'alert webhook unreachable');
    }
  }
}

/** Slack incoming-webhook payload. */
export function slackMessage(alert: Alert): Record<string, unknown> {
  const head = `${alert.priority} ${alert.signal} on ${alert.agent_id}`;
  return {
    text: `${head}: ${alert.title}`,
    blocks: [
      { type: 'header', text: { type: 'plain_text', text: head.slice(0, 150) } },
      { type: 'section', text: { type: 'mrkdwn', text: alert.title.slice(0, 2900) } },
      {
        type: 'section',
        fields: [
          { type: 'mrkdwn', text: `*Severity*\n${alert.severity}` },
          { type: 'mrkdwn', text: `*Incident*\n${alert.incident_id ?? 'none'}` },
          { type: 'mrkdwn', text: `*Actions*\n${alert.actions.join(', ') || 'none (alert only)'}` },
        ],
      },
    ],
  };
}

/** PagerDuty Events API v2 trigger. */
export function pagerDutyEvent(alert: Alert, at: number, routingKey?: string): Record<string, unknown> {
  const severity =
    alert.priority === 'P0'
      ? 'critical'
      : alert.priority === 'P1'
        ? 'error'
        : alert.priority === 'P2'
          ? 'warning'
          : 'info';
  return {
    routing_key: routingKey ?? '',
    event_action: 'trigger',
    dedup_key: alert.incident_id ?? `${alert.agent_id}:${alert.signal}`,
    payload: {
      summary: `${alert.priority} ${alert.signal} on ${alert.agent_id}: ${alert.title}`.slice(0, 1024),
      source: alert.agent_id,
      severity,
      timestamp: new Date(at).toISOString(),
      component: 'agent-incident-mcp',
      group: alert.signal,
      class: alert.signal,
      custom_details: {
        incident_id: alert.incident_id,
        actions: alert.actions,
        severity: alert.severity,
        ...alert.details,
      },
    },
  };
}
