/**
 * tools/list is read by the model on every turn, so its size is a budget: at most 6,000 tokens, and no
 * more than 10 % above the recorded baseline without a deliberate update of `tools-list-size.json`.
 *
 * Tokens are approximated as ceil(characters / 4) of the JSON-RPC `result` exactly as the server sends
 * it (compact JSON of `{tools: [...]}`): the usual rule of thumb for English and JSON with GPT/Claude
 * style BPE tokenizers. No tokenizer dependency, so the figure is stable across machines.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Fixture, startFixture } from '../helpers/fixture.js';

const BASELINE = JSON.parse(readFileSync(new URL('./tools-list-size.json', import.meta.url), 'utf8')) as {
  tokens: number;
  chars: number;
  method: string;
};
const LIMIT_TOKENS = 6_000;
const MAX_GROWTH = 0.1;

/** Approximate tokens: characters / 4, rounded up. */
const approxTokens = (text: string): number => Math.ceil(text.length / 4);

describe('tools/list size', () => {
  let f: Fixture;
  let ro: Fixture;
  beforeAll(async () => {
    f = await startFixture({ agents: 2 });
    ro = await startFixture({ sandbox: f.sandbox, config: (c) => ({ ...c, readOnly: true }) });
  });
  afterAll(async () => {
    await ro?.close();
    await f?.close();
  });

  it(`stays within ${LIMIT_TOKENS} tokens and within ${MAX_GROWTH * 100} % of the recorded baseline`, async () => {
    const wire = JSON.stringify(await f.client.listTools());
    const tokens = approxTokens(wire);
    const readOnly = approxTokens(JSON.stringify(await ro.client.listTools()));
    // The figure, for the log and the README: default configuration, and read-only.
    process.stdout.write(
      `tools/list: ${wire.length} chars ≈ ${tokens} tokens (chars/4); read-only ≈ ${readOnly}; baseline ${BASELINE.tokens}, limit ${LIMIT_TOKENS}\n`,
    );
    expect(BASELINE.method).toBe('ceil(chars/4) of JSON.stringify(tools/list result), default configuration');
    expect(tokens).toBeLessThanOrEqual(LIMIT_TOKENS);
    expect(tokens, 'grew more than 10 % over test/server/tools-list-size.json').toBeLessThanOrEqual(
      Math.floor(BASELINE.tokens * (1 + MAX_GROWTH)),
    );
    expect(readOnly).toBeLessThan(tokens);
  });

  it('the approximation is what it says', () => {
    expect(approxTokens('')).toBe(0);
    expect(approxTokens('abcd')).toBe(1);
    expect(approxTokens('abcde')).toBe(2);
  });
});
