import type { z } from 'zod';
import type { Approval } from '../guards/index.js';
import type { Ops } from '../runbooks/ops.js';

export type Toolset = 'detect' | 'contain' | 'recover' | 'learn' | 'runbooks';

/** All four hints, required by the type so no tool can leave one out. */
export interface ToolHints {
  readonly readOnlyHint: boolean;
  readonly destructiveHint: boolean;
  readonly idempotentHint: boolean;
  readonly openWorldHint: boolean;
}

/** What the guard seam hands a tool handler. Handlers never see the MCP server or raw HTTP. */
export interface ToolContext {
  readonly ops: Ops;
  readonly signal: AbortSignal;
  /** Reports progress to the caller when it asked for it (a progress token); otherwise a no-op. */
  progress(done: number, total: number, message?: string): Promise<void>;
  /** Who is asking: this MCP session. Approvals are bound to it. */
  readonly requester: string;
  /**
   * Tells the person at the host where to approve (URL elicitation), when the host supports it; the URL
   * goes to the host's user interface, not to the model.
   */
  readonly announceApproval: ((approval: Approval, url: string) => void) | undefined;
  /**
   * Asks the person at the host in a form, when the host supports form elicitation AND the operator turned
   * it on (guards.formElicitation); undefined otherwise.
   */
  readonly elicit:
    | ((
        message: string,
        requestedSchema: Record<string, unknown>,
      ) => Promise<{ action: string; content?: Record<string, unknown> }>)
    | undefined;
}

export interface ToolResult<O> {
  structured: O;
  /**
   * The decision-relevant facts in a few lines (decision, agents, money, suspect payee, failures, next
   * step): a host may pass only the text to the model, so nothing needed to act may live only in
   * `structured`. Gateway-written text in it is marked (see guards/redact.ts).
   */
  text: string;
}

/** A tool's input: a strict object, so an argument the tool does not know is refused rather than dropped. */
export type ToolInput = z.ZodObject<z.ZodRawShape, z.core.$strict>;

/**
 * One MCP tool as data. `server.ts` registers each through the guard seam; nothing else registers tools.
 */
export interface ToolDefinition<I extends ToolInput = ToolInput, O extends z.ZodObject = z.ZodObject> {
  readonly name: string;
  readonly title: string;
  readonly description: string;
  readonly toolset: Toolset;
  readonly annotations: ToolHints;
  /**
   * The hints in read-only mode, for a tool that then changes nothing at all (run_postmortem builds and
   * returns the report, stores and publishes nothing). Absent: read-only mode lists the tool only when
   * `annotations.readOnlyHint` is true.
   */
  readonly readOnlyModeAnnotations?: ToolHints;
  readonly input: I;
  readonly output: O;
  /** Fleet agents the call would touch, for the blast-radius guard (state-changing tools only). */
  readonly targets?: (args: z.infer<I>, ops: Ops) => string[];
  /**
   * How the seam applies the blast radius to `targets`: the policy and its approvals (default), or only
   * fleet membership (fleet shutdown, whose handler always asks for approval itself).
   */
  readonly blastRadius?: 'policy' | 'fleet_only';
  /** Arguments besides the agents that change what the call does: part of the approved action. */
  readonly actionParams?: (args: z.infer<I>) => Record<string, string | number | boolean | null | undefined>;
  /** Whether the call is a dry run (the key-separation guard reports instead of refusing). */
  readonly isDryRun?: (args: z.infer<I>) => boolean;
  handler(ctx: ToolContext, args: z.infer<I>): Promise<ToolResult<z.infer<O>>>;
}

/** The hints a host is shown for this tool in this mode. */
export function hintsFor(
  tool: Pick<ToolDefinition, 'annotations' | 'readOnlyModeAnnotations'>,
  readOnly: boolean,
): ToolHints {
  return readOnly ? (tool.readOnlyModeAnnotations ?? tool.annotations) : tool.annotations;
}

/** Identity helper that keeps each tool file's literal types while checking it against the shape. */
export function defineTool<I extends ToolInput, O extends z.ZodObject>(
  def: ToolDefinition<I, O>,
): ToolDefinition<I, O> {
  return def;
}

export { ToolError } from '../util/errors.js';
