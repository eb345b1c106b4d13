/** Rewrites the generated tables in README.md from the tool list and the config's ENV_VARS. */
import { readFileSync, writeFileSync } from 'node:fs';
import { TOOLS } from '../src/tools/index.js';
import { renderReadme } from '../src/tools/readme.js';

const path = new URL('../README.md', import.meta.url);
const before = readFileSync(path, 'utf8');
const after = renderReadme(before, TOOLS);
if (after !== before) writeFileSync(path, after);
process.stdout.write(after === before ? 'README tables up to date\n' : 'README tables rewritten\n');
