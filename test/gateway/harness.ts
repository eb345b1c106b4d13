/**
 * The real GreenHelix gateway in the test loop: its own source (the tarball, or GREENHELIX_GATEWAY_SRC),
 * run inside a cached Debian trixie root file system (scripts/gateway/build-rootfs.sh) on a free loopback
 * port with a fresh A2A_DATA_DIR. Test equipment, like a database server: run as a black box, never copied.
 *
 * Teardown is layered so a failing or killed test leaves nothing behind: `stop()` kills the process
 * group and removes the temp dirs; an exit hook does the same if `stop()` never ran; the process is
 * started under PR_SET_PDEATHSIG (setpriv), so it dies with the test process even on SIGKILL; and every
 * mount lives in a private mount namespace (scripts/gateway/run-in-rootfs.sh) that vanishes with it.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SCRIPTS = join(REPO_ROOT, 'scripts/gateway');
/** Where the shared workspace keeps the gateway's source (README of /work/shared/greenhelix/gateway). */
export const DEFAULT_GATEWAY_SOURCE = '/work/shared/greenhelix/gateway/a2a-ec0b30f.tar.gz';

/** The gateway source to run: GREENHELIX_GATEWAY_SRC (a tarball or a source directory) or the default tarball. */
export function gatewaySource(env: NodeJS.ProcessEnv = process.env): string {
  return env.GREENHELIX_GATEWAY_SRC || DEFAULT_GATEWAY_SOURCE;
}

/**
 * Why the real-gateway suite cannot run here, or null. Only two reasons count: not root (chroot and
 * mounts need it) and no gateway source. Anything else that goes wrong later is a failure, not a skip.
 */
export function skipReason(env: NodeJS.ProcessEnv = process.env): string | null {
  if (process.getuid?.() !== 0) return 'not root (the gateway runs in a chroot with private mounts)';
  const src = gatewaySource(env);
  if (!existsSync(src)) return `gateway source not found at ${src} (set GREENHELIX_GATEWAY_SRC)`;
  return null;
}

/**
 * Builds the trixie runtime once (cached outside the clone; a few minutes the first time, instant after)
 * and returns its path. Progress goes to this process's stderr. Throws when the build fails.
 */
export function buildRootfs(): string {
  const started = Date.now();
  const r = spawnSync('bash', [join(SCRIPTS, 'build-rootfs.sh')], {
    stdio: ['ignore', 'pipe', 'inherit'],
    encoding: 'utf8',
    timeout: 20 * 60_000,
  });
  if (r.status !== 0)
    throw new Error(`building the gateway root file system failed (exit ${r.status ?? r.signal})`);
  const path = r.stdout.trim().split('\n').at(-1) ?? '';
  if (!existsSync(join(path, '.aim-rootfs-ok'))) throw new Error(`no built root file system at "${path}"`);
  process.stderr.write(`[gateway] root file system ${path} ready in ${Date.now() - started} ms\n`);
  return path;
}

/** setpriv arguments that run a command in the rootfs, killed with the test process. */
function inRootfs(rootfs: string, srcRoot: string, dataDir: string): string[] {
  return ['--pdeathsig', 'KILL', '--', join(SCRIPTS, 'run-in-rootfs.sh'), rootfs, srcRoot, dataDir, '--'];
}

export interface RealGateway {
  url: string;
  port: number;
  /** The gateway's A2A_DATA_DIR on this machine: its SQLite files, for ground truth. */
  dataDir: string;
  version: string;
  /** Milliseconds from spawn to the first healthy `GET /v1/health`. */
  startMs: number;
  /** Runs a script from scripts/gateway inside the gateway's runtime (same source and data) and returns stdout. */
  runTool(script: string, stdin: string): string;
  /** The last lines of the gateway's log (for failure messages). */
  logTail(lines?: number): string;
  stop(): Promise<void>;
}

/** The directory holding gateway/main.py: the source itself or its single top-level folder (a2a/). */
function findSourceRoot(dir: string): string {
  if (existsSync(join(dir, 'gateway/main.py'))) return dir;
  if (existsSync(join(dir, 'a2a/gateway/main.py'))) return join(dir, 'a2a');
  throw new Error(`no gateway/main.py in ${dir} or ${dir}/a2a`);
}

async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolvePort(port));
    });
  });
}

const live = new Set<() => void>();
let exitHookInstalled = false;
function onExit(kill: () => void): () => void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const k of live) k();
    });
  }
  live.add(kill);
  return () => live.delete(kill);
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // Already gone.
  }
}

const WORK_PREFIX = 'aim-gateway-';

/**
 * Removes the temp dirs of runs whose test process was killed outright (SIGKILL skips every hook; the
 * gateway itself died with it through PR_SET_PDEATHSIG, and its mounts with its namespace).
 */
function removeOrphanedWorkDirs(): void {
  for (const name of readdirSync(tmpdir())) {
    if (!name.startsWith(WORK_PREFIX)) continue;
    const dir = join(tmpdir(), name);
    let owner: number;
    try {
      owner = Number(readFileSync(join(dir, 'owner.pid'), 'utf8'));
    } catch {
      continue;
    }
    try {
      process.kill(owner, 0);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ESRCH') rmSync(dir, { recursive: true, force: true });
    }
  }
}

/**
 * Starts the gateway from `source` inside `rootfs`, waits for `GET /v1/health`, and returns a handle.
 * A start that fails (the process exits, health never answers within `timeoutMs`) throws with the log tail.
 */
export async function startGateway(opts: {
  rootfs: string;
  source?: string;
  timeoutMs?: number;
}): Promise<RealGateway> {
  const source = opts.source ?? gatewaySource();
  removeOrphanedWorkDirs();
  const work = mkdtempSync(join(tmpdir(), WORK_PREFIX));
  writeFileSync(join(work, 'owner.pid'), String(process.pid));
  const dataDir = join(work, 'data');
  mkdirSync(dataDir);
  let srcRoot: string;
  if (statSync(source).isDirectory()) {
    srcRoot = findSourceRoot(source);
  } else {
    const dest = join(work, 'src');
    mkdirSync(dest);
    const tar = spawnSync('tar', ['-xzf', source, '-C', dest], { encoding: 'utf8' });
    if (tar.status !== 0) throw new Error(`cannot extract ${source}: ${tar.stderr.trim()}`);
    srcRoot = findSourceRoot(dest);
  }
  const logPath = join(work, 'gateway.log');
  const logFd = openSync(logPath, 'a');
  const port = await freePort();
  const started = Date.now();
  const child = spawn(
    'setpriv',
    [
      ...inRootfs(opts.rootfs, srcRoot, dataDir),
      'python3',
      '-m',
      'uvicorn',
      'gateway.main:app',
      '--host',
      '127.0.0.1',
      '--port',
      String(port),
      '--workers',
      '1',
    ],
    { detached: true, stdio: ['ignore', logFd, logFd] },
  );
  let exited: string | null = null;
  const exitedPromise = new Promise<void>((r) =>
    child.once('exit', (code, signal) => {
      exited = `exit ${code ?? signal}`;
      r();
    }),
  );
  const removeWork = () => rmSync(work, { recursive: true, force: true });
  const unhook = onExit(() => {
    killGroup(child, 'SIGKILL');
    removeWork();
  });
  const logTail = (lines = 30) => {
    try {
      return readFileSync(logPath, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  };
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    if (exited === null) {
      killGroup(child, 'SIGTERM');
      const t = setTimeout(() => killGroup(child, 'SIGKILL'), 5_000);
      await exitedPromise;
      clearTimeout(t);
    }
    unhook();
    removeWork();
  };

  const url = `http://127.0.0.1:${port}`;
  const deadline = started + (opts.timeoutMs ?? 60_000);
  let version = '';
  while (!version) {
    if (exited !== null) {
      const tail = logTail();
      await stop();
      throw new Error(`the gateway exited before it was healthy (${exited}):\n${tail}`);
    }
    if (Date.now() > deadline) {
      const tail = logTail();
      await stop();
      throw new Error(`the gateway was not healthy within ${opts.timeoutMs ?? 60_000} ms:\n${tail}`);
    }
    try {
      const r = await fetch(`${url}/v1/health`, { signal: AbortSignal.timeout(2_000) });
      const body = (await r.json()) as { status?: string; version?: string };
      if (r.ok && body.status === 'ok') version = body.version ?? 'unknown';
    } catch {
      await new Promise((r) => setTimeout(r, 150));
    }
  }
  const startMs = Date.now() - started;
  process.stderr.write(`[gateway] ${version} healthy at ${url} in ${startMs} ms (data ${dataDir})\n`);

  return {
    url,
    port,
    dataDir,
    version,
    startMs,
    logTail,
    stop,
    runTool(script, stdin) {
      const r = spawnSync(
        'setpriv',
        [...inRootfs(opts.rootfs, srcRoot, dataDir), 'python3', `/run/aim/tools/${script}`],
        { input: stdin, encoding: 'utf8', timeout: 60_000 },
      );
      if (r.status !== 0)
        throw new Error(`${script} failed (exit ${r.status ?? r.signal}): ${r.stderr.trim().slice(-2000)}`);
      return r.stdout;
    },
  };
}
