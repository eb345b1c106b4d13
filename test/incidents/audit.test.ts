/**
 * The audit log's hash chain: appends link up across batches and processes; verify-audit names a single
 * altered or removed record (the last one included) and exits 1, and 0 on an intact log. On both engines:
 * a SQLite file, and a PostgreSQL database (verify-audit --database-url).
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  type AuditRecord,
  auditHash,
  auditRecords,
  type IncidentStore,
  verifyAudit,
} from '../../src/incidents/index.js';
import { systemClock } from '../../src/util/clock.js';
import { runVerifyAudit } from '../../src/verify-audit.js';
import { cleanupStores, ENGINES, type Engine, newStorePlace, type StorePlace } from '../helpers/stores.js';

const WRITE = {
  tool: 'freeze_wallet',
  method: 'POST',
  route: '/v1/billing/wallets/agent-01/freeze',
  agent_id: 'agent-01',
  target: null,
  idempotency_key: null,
  key: 'abcd1234',
};

describe.each(ENGINES)('%s', (engine: Engine) => {
  let place: StorePlace;
  let store: IncidentStore;

  beforeEach(() => {
    place = newStorePlace(engine);
    store = place.open(systemClock);
  });
  afterEach(cleanupStores);

  /** Ten records: guard decisions, write intents and their outcomes, over several batches. */
  async function fill(s: IncidentStore): Promise<void> {
    s.audit.guard({
      guard: 'containment_key',
      allowed: true,
      tool: 'contain_agent',
      agent_ids: ['agent-01'],
      reason: 'allowed',
    });
    // Four intents in one turn of the event loop: one commit.
    const intents = await Promise.all(
      [1, 2, 3, 4].map((n) => s.audit.writeIntent({ ...WRITE, target: `esc_${n}` })),
    );
    for (const intent of intents.slice(0, 3))
      s.audit.writeOutcome({ intent, status: 200, code: null, attempts: 1 });
    s.audit.guard({
      guard: 'blast_radius',
      allowed: false,
      tool: 'contain_agent',
      agent_ids: ['x'],
      reason: 'agent_not_in_fleet: x',
    });
    s.audit.flush();
  }

  function verify(): { code: number; out: string } {
    const out: string[] = [];
    const args =
      engine === 'sqlite'
        ? ['--store', join(place.dir as string, 'incidents.sqlite')]
        : ['--database-url', place.url as string];
    const code = runVerifyAudit(args, { stdout: (t) => out.push(t), stderr: (t) => out.push(t) });
    return { code, out: out.join('') };
  }

  function rows(): AuditRecord[] {
    return [...store.audit.records()];
  }

  describe('the audit log', () => {
    it('links every record to the one before, in order, across batches', async () => {
      await fill(store);
      const all = rows();
      expect(all.map((r) => r.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
      expect(all.map((r) => r.kind)).toEqual([
        'guard',
        'gateway_write',
        'gateway_write',
        'gateway_write',
        'gateway_write',
        'gateway_outcome',
        'gateway_outcome',
        'gateway_outcome',
        'guard',
      ]);
      all.forEach((r, i) => {
        expect(r.hash).toBe(auditHash(r));
        expect(r.prev_hash).toBe(i === 0 ? '0'.repeat(64) : all[i - 1]!.hash);
      });
      const v = verifyAudit(all, 9);
      expect(v).toMatchObject({ ok: true, records: 9, head: all[8]!.hash, problems: [] });
      // The fourth intent never got an outcome: a write that may or may not have happened.
      expect(v.open_writes).toEqual([5]);
      // PostgreSQL reads the log a page at a time (SQLite steps through one statement): same records.
      expect([...auditRecords(store.db, 4)]).toEqual(all);
    });

    it('keeps one chain when two processes append to the same store', async () => {
      const other = place.open(systemClock);
      try {
        for (let i = 0; i < 5; i++) {
          store.audit.guard({ guard: 'g', allowed: true, tool: 't', agent_ids: [], reason: `a${i}` });
          other.audit.guard({ guard: 'g', allowed: true, tool: 't', agent_ids: [], reason: `b${i}` });
        }
      } finally {
        other.close();
      }
      expect(verifyAudit(rows(), 10)).toMatchObject({ ok: true, records: 10 });
    });

    it('rejects an intent it cannot write, so the request is never sent', async () => {
      store.db.exec('DROP TABLE audit_log');
      await expect(store.audit.writeIntent(WRITE)).rejects.toThrow(/audit_log/);
    });
  });

  describe('verify-audit', () => {
    it('exits 0 on an intact log and prints its head hash', async () => {
      await fill(store);
      const r = verify();
      expect(r.code).toBe(0);
      expect(r.out).toContain('audit log intact: 9 records');
      expect(r.out).toContain(rows()[8]!.hash);
    });

    it('names a record whose contents were changed', async () => {
      await fill(store);
      store.db.prepare("UPDATE audit_log SET data = replace(data, 'esc_2', 'esc_9') WHERE seq = 3").run();
      const r = verify();
      expect(r.code).toBe(1);
      expect(r.out).toContain('record 3: altered: its contents no longer match its hash');
      expect(r.out).toContain('audit log broken: 1 problem(s)');
    });

    it("names a record whose contents and hash were both rewritten, by the next record's link", async () => {
      await fill(store);
      const r4 = rows()[3]!;
      const data = r4.data.replace('esc_3', 'esc_9');
      store.db
        .prepare('UPDATE audit_log SET data = ?, hash = ? WHERE seq = 4')
        .run(data, auditHash({ ...r4, data }));
      const r = verify();
      expect(r.code).toBe(1);
      expect(r.out).toContain('record 4: altered: its hash no longer matches the link held by record 5');
      expect(r.out).toContain('1 problem(s)');
    });

    it('names a removed record', async () => {
      await fill(store);
      store.db.prepare('DELETE FROM audit_log WHERE seq = 6').run();
      const r = verify();
      expect(r.code).toBe(1);
      expect(r.out).toContain('record 6: removed');
      expect(r.out).toContain('1 problem(s) in 8 records');
    });

    it('names the last record when it is the one removed, and the next append does not hide it', async () => {
      await fill(store);
      store.db.prepare('DELETE FROM audit_log WHERE seq = 9').run();
      expect(verify().out).toContain('record 9: removed');
      store.audit.guard({ guard: 'g', allowed: true, tool: 't', agent_ids: [], reason: 'later' });
      const r = verify();
      expect(r.code).toBe(1);
      expect(r.out).toContain('record 9: removed');
      expect(r.out).toContain('1 problem(s) in 9 records');
    });

    // Engine-specific by nature: "no store" is a missing file on SQLite, a missing database on PostgreSQL.
    it('exits 2 with one line when there is no store', () => {
      if (engine === 'sqlite') {
        rmSync(place.dir as string, { recursive: true, force: true });
        expect(() => verify()).toThrow(/no incident store at/);
      } else {
        const u = new URL(place.url as string);
        u.pathname = '/no_such_database';
        u.password = 'hunter2';
        place = { ...place, url: u.toString() };
        expect(() => verify()).toThrow(
          /cannot open the incident store at postgres:\/\/postgres:\*\*\*@.*does not exist/,
        );
      }
    });
  });
});
