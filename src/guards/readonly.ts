/**
 * Which tools a configuration exposes: read-only mode beats everything (only tools that change nothing),
 * then an exclusion beats an inclusion.
 */
export interface FilterableTool {
  readonly name: string;
  readonly toolset: string;
  readonly annotations: { readonly readOnlyHint: boolean };
}

export function filterTools<T extends FilterableTool>(
  tools: readonly T[],
  opts: {
    readOnly: boolean;
    include?: readonly string[] | undefined;
    exclude?: readonly string[] | undefined;
  },
): T[] {
  return tools.filter((t) => {
    if (opts.readOnly && !t.annotations.readOnlyHint) return false;
    if (opts.exclude?.includes(t.toolset)) return false;
    if (opts.include && opts.include.length > 0 && !opts.include.includes(t.toolset)) return false;
    return true;
  });
}
