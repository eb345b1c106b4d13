/**
 * Which tools a configuration exposes. Read-only mode beats everything: only tools whose hints in that
 * mode say `readOnlyHint: true` (detection, incident reads, the post-mortem as a report that is neither
 * stored nor published) survive it, whatever the toolsets say. Then an exclusion beats an inclusion, so excluding `contain` cannot be undone by including it.
 */

/** The part of a tool definition the filter reads. */
export interface FilterableTool {
  readonly name: string;
  readonly toolset: string;
  readonly annotations: { readonly readOnlyHint: boolean };
  /** The hints in read-only mode, when the tool behaves differently there. */
  readonly readOnlyModeAnnotations?: { readonly readOnlyHint: boolean } | undefined;
}

/** Toolset selection; an empty or absent `include` means every toolset. */
export interface ToolFilter {
  readOnly: boolean;
  include?: readonly string[] | undefined;
  exclude?: readonly string[] | undefined;
}

/** The tools to register, in their original order. */
export function filterTools<T extends FilterableTool>(tools: readonly T[], filter: ToolFilter): T[] {
  const include = filter.include && filter.include.length > 0 ? new Set(filter.include) : undefined;
  const exclude = new Set(filter.exclude ?? []);
  return tools.filter((t) => {
    // Strictly true: a missing or malformed hint counts as "changes state".
    if (filter.readOnly && (t.readOnlyModeAnnotations ?? t.annotations)?.readOnlyHint !== true) return false;
    if (exclude.has(t.toolset)) return false;
    return include === undefined || include.has(t.toolset);
  });
}
