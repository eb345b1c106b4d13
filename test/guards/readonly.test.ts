import { describe, expect, it } from 'vitest';
import { filterTools } from '../../src/guards/index.js';

const tool = (name: string, toolset: string, readOnlyHint: boolean) => ({
  name,
  toolset,
  annotations: { readOnlyHint },
});
const TOOLS = [
  tool('detect_anomalies', 'detect', true),
  tool('contain_agent', 'contain', false),
  tool('fleet_shutdown', 'contain', false),
  tool('recover_agent', 'recover', false),
  tool('get_incident', 'learn', true),
  tool('run_postmortem', 'learn', false),
  tool('list_runbooks', 'runbooks', true),
  tool('run_runbook', 'runbooks', false),
];
const names = (opts: Parameters<typeof filterTools>[1]) => filterTools(TOOLS, opts).map((t) => t.name);

describe('filterTools', () => {
  it('exposes everything by default, in order', () => {
    expect(names({ readOnly: false })).toEqual(TOOLS.map((t) => t.name));
    expect(names({ readOnly: false, include: [] })).toEqual(TOOLS.map((t) => t.name));
  });

  it('read-only keeps only tools that declare readOnlyHint: true, whatever is included', () => {
    expect(names({ readOnly: true })).toEqual(['detect_anomalies', 'get_incident', 'list_runbooks']);
    expect(names({ readOnly: true, include: ['contain', 'recover'] })).toEqual([]);
    expect(names({ readOnly: true, include: ['learn', 'contain'] })).toEqual(['get_incident']);
    const odd = [{ name: 'hintless', toolset: 'detect', annotations: {} as { readOnlyHint: boolean } }];
    expect(filterTools(odd, { readOnly: true })).toEqual([]);
  });

  it('includes only the named toolsets', () => {
    expect(names({ readOnly: false, include: ['detect', 'learn'] })).toEqual([
      'detect_anomalies',
      'get_incident',
      'run_postmortem',
    ]);
  });

  it('an exclusion beats an inclusion', () => {
    expect(names({ readOnly: false, include: ['contain', 'detect'], exclude: ['contain'] })).toEqual([
      'detect_anomalies',
    ]);
    expect(names({ readOnly: false, exclude: ['contain', 'runbooks'] })).toEqual([
      'detect_anomalies',
      'recover_agent',
      'get_incident',
      'run_postmortem',
    ]);
  });
});
