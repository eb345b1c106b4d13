import { z } from 'zod';
import { defineTool } from './types.js';

export const listRunbooks = defineTool({
  name: 'list_runbooks',
  title: 'List runbooks',
  toolset: 'runbooks',
  description:
    'The five incident runbooks: trigger signals, priority, automated steps, the follow-up left to people. Full ' +
    'text: resource runbook://{name}. Run one with run_runbook (dry_run first).',
  annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  input: z.strictObject({}),
  output: z.object({
    runbooks: z.array(
      z.object({
        name: z.string(),
        title: z.string(),
        triggers: z.array(z.string()),
        priority: z.string(),
        automated_steps: z.array(z.string()),
        follow_up: z.array(z.string()),
        uri: z.string(),
      }),
    ),
  }),
  async handler(ctx) {
    const runbooks = ctx.ops.listRunbooks();
    return {
      structured: { runbooks },
      text: runbooks.map((r) => `${r.name} (${r.priority}): ${r.title}`).join('\n'),
    };
  },
});
