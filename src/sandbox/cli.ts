/**
 * `agent-incident-mcp sandbox`: the embedded gateway alone. Prints one JSON line (url, control token,
 * keys, fleet, shared wallet) and serves until SIGINT or SIGTERM.
 */
import { parseArgs } from 'node:util';
import { FLEET_TRAFFIC, type FleetTraffic, startSandbox } from './index.js';

export interface SandboxIo {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
}

function number(name: string, raw: string | undefined, min: number, max: number): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min || n > max)
    throw new RangeError(`--${name}: expected a number from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  return n;
}

export async function runSandboxCommand(argv: string[], io: SandboxIo): Promise<number> {
  let opts: Parameters<typeof startSandbox>[0];
  try {
    const { values } = parseArgs({
      args: argv,
      options: {
        port: { type: 'string' },
        host: { type: 'string' },
        agents: { type: 'string' },
        seed: { type: 'string' },
        'latency-ms': { type: 'string' },
        'jitter-ms': { type: 'string' },
        'error-rate': { type: 'string' },
        'time-scale': { type: 'string' },
        'no-traffic': { type: 'boolean' },
        traffic: { type: 'string' },
      },
      strict: true,
    });
    const traffic = values.traffic;
    if (traffic !== undefined && !(FLEET_TRAFFIC as readonly string[]).includes(traffic))
      throw new RangeError(
        `--traffic: expected one of ${FLEET_TRAFFIC.join(', ')}, got ${JSON.stringify(traffic)}`,
      );
    if (traffic !== undefined && values['no-traffic'])
      throw new RangeError('--traffic and --no-traffic: give one');
    opts = {
      port: number('port', values.port, 0, 65_535),
      host: values.host ?? '127.0.0.1',
      agents: number('agents', values.agents, 1, 10_000),
      seed: number('seed', values.seed, 0, 2 ** 31),
      latencyMs: number('latency-ms', values['latency-ms'], 0, 60_000),
      jitterMs: number('jitter-ms', values['jitter-ms'], 0, 60_000),
      errorRate: number('error-rate', values['error-rate'], 0, 1),
      timeScale: number('time-scale', values['time-scale'], 0, 10_000),
      autoStartTraffic: !values['no-traffic'],
      traffic: traffic as FleetTraffic | undefined,
    };
  } catch (e) {
    io.stderr(`agent-incident-mcp sandbox: ${(e as Error).message}`);
    io.stderr(
      'usage: agent-incident-mcp sandbox [--port N] [--host 127.0.0.1] [--agents N] [--seed S] [--latency-ms N] [--jitter-ms N] [--error-rate R] [--time-scale X] [--traffic mixed|mixed_paths|steady|none | --no-traffic]',
    );
    return 2;
  }
  const sandbox = await startSandbox(opts);
  io.stdout(
    `${JSON.stringify({ url: sandbox.url, control_token: sandbox.controlToken, keys: sandbox.keys, fleet: sandbox.fleet, shared_wallet: sandbox.sharedWallet })}\n`,
  );
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await sandbox.close();
  return 0;
}
