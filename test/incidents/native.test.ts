import { describe, expect, it } from 'vitest';
import { nativeStoreProblem } from '../../src/incidents/native.js';

const ON_22 = { version: 'v22.23.5', abi: '127', execPath: '/opt/node-22/bin/node' };

// Node's own text when a module built for Node 20 is loaded by Node 22.
const ABI_MISMATCH =
  "The module '/Users/op/Application Support/aim/node_modules/better-sqlite3/build/Release/better_sqlite3.node'\n" +
  'was compiled against a different Node.js version using\nNODE_MODULE_VERSION 115. This version of Node.js requires\n' +
  'NODE_MODULE_VERSION 127. Please try re-compiling or re-installing\nthe module (for instance, using `npm rebuild` or `npm install`).';

describe('nativeStoreProblem', () => {
  it('is null when the driver loads (it does, on the Node that runs this suite)', () => {
    expect(nativeStoreProblem()).toBeNull();
  });

  it('names the Node running, the Node the build is for, and the rebuild command, on one line', () => {
    const line = nativeStoreProblem(() => {
      throw new Error(ABI_MISMATCH);
    }, ON_22);
    expect(line).not.toContain('\n');
    expect(line).toContain('built for Node 20 (NODE_MODULE_VERSION 115)');
    expect(line).toContain('this is Node v22.23.5 (NODE_MODULE_VERSION 127) at /opt/node-22/bin/node');
    // The install directory holds a space: quoted, so the command pastes as it is.
    expect(line).toContain(
      `Fix: cd '/Users/op/Application Support/aim' && PATH=/opt/node-22/bin:"$PATH" npm rebuild better-sqlite3`,
    );
  });

  it('says so, still on one line, when the driver fails to load for another reason', () => {
    const line = nativeStoreProblem(() => {
      throw new Error(
        'Could not locate the bindings file. Tried:\n → /srv/aim/node_modules/better-sqlite3/build/better_sqlite3.node',
      );
    }, ON_22);
    expect(line).not.toContain('\n');
    expect(line).toContain('does not load on Node v22.23.5');
    expect(line).toContain('Could not locate the bindings file');
    expect(line).toContain('cd /srv/aim && PATH=/opt/node-22/bin:"$PATH" npm rebuild better-sqlite3');
  });

  it('names an ABI it has no release line for by number', () => {
    const line = nativeStoreProblem(() => {
      throw new Error(ABI_MISMATCH.replace('115', '999'));
    }, ON_22);
    expect(line).toContain('built for NODE_MODULE_VERSION 999,');
  });
});
