/**
 * Child of remote-sandbox.ts: starts the sandbox with the options in argv[2] (JSON), prints one JSON line
 * (url, control token, keys, fleet, shared wallet, sandbox time) and serves until SIGTERM.
 */
import { startSandbox } from '../../src/sandbox/index.js';

const sandbox = await startSandbox(JSON.parse(process.argv[2] ?? '{}'));
process.stdout.write(
  `${JSON.stringify({ url: sandbox.url, control_token: sandbox.controlToken, keys: sandbox.keys, fleet: sandbox.fleet, shared_wallet: sandbox.sharedWallet, now: sandbox.clock.now() })}\n`,
);
process.once('SIGTERM', () => {
  void sandbox.close().then(() => process.exit(0));
});
