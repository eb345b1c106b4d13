/**
 * The store's SQLite driver, better-sqlite3, is a native addon built for one Node ABI. A host that starts
 * the server with another Node (Claude Desktop's `"command": "node"` takes whichever is first on its
 * PATH) would die with a stack trace from inside the store; this turns that into one line that says which
 * Node runs, which one the build is for, and the command that fixes it.
 */
import { dirname } from 'node:path';
import Database from 'better-sqlite3';

/** NODE_MODULE_VERSION → Node release line, for the lines the message is likely to name. */
const NODE_LINE_OF_ABI: Readonly<Record<string, string>> = {
  '108': '18',
  '115': '20',
  '127': '22',
  '137': '24',
};

export interface NodeRuntime {
  /** `process.version`, e.g. `v22.23.5`. */
  version: string;
  /** `process.versions.modules`: the NODE_MODULE_VERSION this Node requires. */
  abi: string;
  /** `process.execPath`. */
  execPath: string;
}

const CURRENT: NodeRuntime = {
  version: process.version,
  abi: process.versions.modules,
  execPath: process.execPath,
};

/** Loads the native driver the way the store first does (better-sqlite3 binds lazily, on first open). */
function openInMemory(): void {
  new Database(':memory:').close();
}

function nodeOfAbi(abi: string): string {
  const line = NODE_LINE_OF_ABI[abi];
  return line ? `Node ${line} (NODE_MODULE_VERSION ${abi})` : `NODE_MODULE_VERSION ${abi}`;
}

/**
 * Null when the driver loads; otherwise the one line to print before exiting 2. `load` and `runtime` are
 * injected for tests.
 */
export function nativeStoreProblem(
  load: () => void = openInMemory,
  runtime: NodeRuntime = CURRENT,
): string | null {
  try {
    load();
    return null;
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    // Node's text: "The module '…/better_sqlite3.node' was compiled against … NODE_MODULE_VERSION 115. This
    // version of Node.js requires NODE_MODULE_VERSION 127. …"
    const abis = /NODE_MODULE_VERSION (\d+)[\s\S]*?NODE_MODULE_VERSION (\d+)/.exec(message);
    // The module's path is quoted in Node's text and may hold spaces; "Could not locate the bindings file"
    // lists unquoted paths instead.
    const modulePath = (/'([^']*[\\/]node_modules[\\/]better-sqlite3)[\\/]/.exec(message) ??
      /([^\s'"]*[\\/]node_modules[\\/]better-sqlite3)[\\/]/.exec(message))?.[1];
    const where = modulePath ? dirname(dirname(modulePath)) : null;
    const rebuild = `${where ? `cd ${quote(where)} && ` : ''}PATH=${quote(dirname(runtime.execPath))}:"$PATH" npm rebuild better-sqlite3`;
    const running = `Node ${runtime.version} (NODE_MODULE_VERSION ${runtime.abi}) at ${runtime.execPath}`;
    if (abis)
      return (
        `agent-incident-mcp: the incident store's SQLite driver (better-sqlite3) was built for ${nodeOfAbi(abis[1] as string)}, ` +
        `but this is ${running}. Fix: ${rebuild}, or start the server with the Node it was built for.`
      );
    const first = message.split('\n')[0];
    return `agent-incident-mcp: the incident store's SQLite driver (better-sqlite3) does not load on ${running}: ${first}. Fix: ${rebuild}.`;
  }
}

/** Quotes a path for a POSIX shell only when it needs it. */
function quote(path: string): string {
  return /^[\w@%+=:,./-]+$/.test(path) ? path : `'${path.replaceAll("'", "'\\''")}'`;
}
