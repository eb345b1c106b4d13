import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, hasGatewayAccess, loadConfig, redactedDatabaseUrl } from '../src/config.js';

describe('loadConfig', () => {
  it('takes a PostgreSQL store from INCIDENT_DATABASE_URL, and never shows its password', () => {
    const url = 'postgres://aim:s3cret@db.internal:5432/incidents?sslmode=require';
    expect(loadConfig({ env: { INCIDENT_DATABASE_URL: url } }).databaseUrl).toBe(url);
    expect(loadConfig({ env: {} }).databaseUrl).toBeUndefined();
    expect(loadConfig({ env: {} }).databaseTimeoutMs).toBe(30_000);
    expect(loadConfig({ env: { INCIDENT_DATABASE_TIMEOUT_MS: '5000' } }).databaseTimeoutMs).toBe(5_000);
    expect(() => loadConfig({ env: { INCIDENT_DATABASE_URL: 'mysql://x/y' } })).toThrow(
      /databaseUrl: a postgres:\/\/ or postgresql:\/\/ URL/,
    );
    expect(() => loadConfig({ env: { INCIDENT_DATABASE_URL: 'mysql://a:s3cret@x/y' } })).not.toThrow(
      /s3cret/,
    );
    expect(redactedDatabaseUrl(url)).toBe('postgres://aim:***@db.internal:5432/incidents?sslmode=require');
    expect(redactedDatabaseUrl('postgresql://h/db?user=a&password=s3cret')).toBe(
      'postgresql://h/db?user=a&password=***',
    );
    expect(redactedDatabaseUrl('postgres://aim@h/db')).toBe('postgres://aim@h/db');
  });

  it('applies defaults < file < env < flags', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cfg-'));
    const file = join(dir, 'c.json');
    writeFileSync(
      file,
      JSON.stringify({ greenhelix: { concurrency: 8, timeoutMs: 5000 }, fleet: ['a1'], logLevel: 'debug' }),
    );
    const config = loadConfig({
      file,
      env: { GREENHELIX_CONCURRENCY: '16', INCIDENT_FLEET: 'a2, a3,a2', GREENHELIX_MONITOR_KEY: 'm' },
      flags: { logLevel: 'warn' },
    });
    expect(config.greenhelix.concurrency).toBe(16);
    expect(config.greenhelix.timeoutMs).toBe(5000);
    expect(config.fleet).toEqual(['a2', 'a3']);
    expect(config.logLevel).toBe('warn');
    expect(config.containment.slaMs).toBe(60_000);
    expect(hasGatewayAccess(config)).toBe(true);
  });

  it('names the bad setting and what it accepts', () => {
    expect(() => loadConfig({ env: { GREENHELIX_CONCURRENCY: 'lots' } })).toThrow(
      /GREENHELIX_CONCURRENCY: expected a number/,
    );
    expect(() => loadConfig({ env: { GREENHELIX_CONCURRENCY: '100000' } })).toThrow(
      /greenhelix\.concurrency/,
    );
    expect(() => loadConfig({ env: { INCIDENT_FLEET: 'ok,bad id!' } })).toThrow(
      /fleet\.1: .*agent ids match/,
    );
    expect(() => loadConfig({ env: { INCIDENT_THRESHOLDS: '{nope' } })).toThrow(ConfigError);
    expect(() => loadConfig({ env: {}, flags: { surprise: 1 } })).toThrow(/surprise/);
    expect(() => loadConfig({ env: { INCIDENT_ESCALATION: '{"cost_anomaly:critical":"panic"}' } })).toThrow(
      /escalation/,
    );
  });

  it('refuses a key with whitespace or non-ASCII around or in it, naming the variable', () => {
    expect(() => loadConfig({ env: { GREENHELIX_CONTAINMENT_KEY: ' a2a_pro_abc ' } })).toThrow(
      /GREENHELIX_CONTAINMENT_KEY has spaces/,
    );
    expect(() => loadConfig({ env: { GREENHELIX_MONITOR_KEY: 'a2a_pro_abc\n' } })).toThrow(
      /GREENHELIX_MONITOR_KEY has spaces/,
    );
    expect(loadConfig({ env: { GREENHELIX_MONITOR_KEY: 'a2a_pro_abc' } }).greenhelix.monitorKey).toBe(
      'a2a_pro_abc',
    );
  });

  it('has no gateway access without a monitor key or the sandbox', () => {
    expect(hasGatewayAccess(loadConfig({ env: {} }))).toBe(false);
    expect(hasGatewayAccess(loadConfig({ env: {}, flags: { sandbox: { enabled: true } } }))).toBe(true);
  });

  it('refuses an operator secret that an MCP client or a gateway key already holds', () => {
    const token = 'same-secret-0123456789';
    expect(() =>
      loadConfig({ env: { INCIDENT_HTTP_TOKEN: token, INCIDENT_OPERATOR_SECRET: token } }),
    ).toThrow(/approval\.operatorSecret \(INCIDENT_OPERATOR_SECRET\) equals INCIDENT_HTTP_TOKEN/);
    expect(() =>
      loadConfig({ env: { GREENHELIX_CONTAINMENT_KEY: token, INCIDENT_OPERATOR_SECRET: token } }),
    ).toThrow(ConfigError);
    expect(() => loadConfig({ env: { INCIDENT_OPERATOR_SECRET: 'short' } })).toThrow(
      /approval\.operatorSecret: the operator secret must be at least 16 characters/,
    );
    const ok = loadConfig({
      env: {
        INCIDENT_HTTP_TOKEN: token,
        INCIDENT_OPERATOR_SECRET: `${token}-operator`,
        INCIDENT_APPROVAL_PORT: '0',
      },
    });
    expect(ok.approval).toEqual({ port: 0, operatorSecret: `${token}-operator` });
    expect(ok.guards).toMatchObject({
      maxAgentsPerCall: 3,
      maxFleetShare: 0.1,
      windowMs: 600_000,
      formElicitation: false,
    });
  });
});
