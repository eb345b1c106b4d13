import { GreenHelixError } from '../../src/greenhelix/index.js';

/** The typed error a client call rejects with; a success or any other error fails the test. */
export async function failure(p: Promise<unknown>): Promise<GreenHelixError> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  if (e instanceof GreenHelixError) return e;
  throw new Error(`expected a GreenHelixError, got ${String(e)}`);
}
