/**
 * A throwaway PostgreSQL cluster for the tests: Debian's server binaries (the newest under
 * /usr/lib/postgresql/N/bin), a data directory in a temporary directory, listening on 127.0.0.1 on a free
 * port with its socket in the same directory, fsync on (durability is what the store is about). The
 * global setup (test/global-setup.ts) starts one per vitest run; each test gets its own database.
 *
 * initdb and the server refuse to run as root: as root (CI, the sandboxes) they run as the `postgres`
 * user the Debian package creates, and the temporary directory is theirs.
 */
import { execFileSync } from 'node:child_process';
import {
  appendFileSync,
  chownSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const PG_ROOT = '/usr/lib/postgresql';

export interface PgCluster {
  /** A superuser URL to the cluster's `postgres` database. */
  url: string;
  dir: string;
  stop(): void;
}

/** The newest installed server's bin directory, or a message saying how to install one. */
export function findPgBin(): string {
  const versions = existsSync(PG_ROOT)
    ? readdirSync(PG_ROOT)
        .filter((v) => /^\d+$/.test(v) && existsSync(join(PG_ROOT, v, 'bin', 'initdb')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (versions.length === 0)
    throw new Error(
      `the PostgreSQL tests need a PostgreSQL server: no ${PG_ROOT}/*/bin/initdb found. Install it with \`apt-get install postgresql\` (Debian), then run the tests again.`,
    );
  return join(PG_ROOT, versions[0] as string, 'bin');
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => resolve(typeof addr === 'object' && addr ? addr.port : 0));
    });
  });
}

export async function startCluster(): Promise<PgCluster> {
  const bin = findPgBin();
  const root = process.getuid?.() === 0;
  const dir = mkdtempSync(join(tmpdir(), 'aim-pg-'));
  const asOwner = (cmd: string, args: string[]) =>
    root
      ? execFileSync('runuser', ['-u', 'postgres', '--', join(bin, cmd), ...args], { stdio: 'pipe' })
      : execFileSync(join(bin, cmd), args, { stdio: 'pipe' });
  try {
    if (root) {
      const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
      const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
      chownSync(dir, uid, gid);
    }
    const data = join(dir, 'data');
    // --no-sync: only initdb's own files go unsynced (a throwaway cluster); the server runs with fsync on.
    asOwner('initdb', ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync']);
    const port = await freePort();
    appendFileSync(
      join(data, 'postgresql.conf'),
      [
        '',
        "listen_addresses = '127.0.0.1'",
        `port = ${port}`,
        `unix_socket_directories = '${dir}'`,
        'fsync = on',
        'synchronous_commit = on',
        'max_connections = 300',
        'shared_buffers = 32MB',
        '',
      ].join('\n'),
    );
    try {
      asOwner('pg_ctl', ['-D', data, '-l', join(dir, 'server.log'), '-w', '-t', '60', 'start']);
    } catch (e) {
      const log = existsSync(join(dir, 'server.log')) ? readFileSync(join(dir, 'server.log'), 'utf8') : '';
      throw new Error(`PostgreSQL did not start: ${(e as Error).message}\n${log}`);
    }
    let stopped = false;
    return {
      url: `postgres://postgres@127.0.0.1:${port}/postgres`,
      dir,
      stop() {
        if (stopped) return;
        stopped = true;
        try {
          asOwner('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      },
    };
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}
