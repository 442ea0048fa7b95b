/** Reading and checking costs.json: {"models": {NAME: {ap}}, "costs": {A: {B: d(A -> B)}}}. */
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { MtpdError } from '../errors.js';
import type { CostTable } from './bgs.js';

const nonNegative = z.number().finite().nonnegative();

export const costTableSchema = z.object({
  models: z.record(z.string(), z.object({ ap: z.number().finite() }).passthrough()),
  costs: z.record(z.string(), z.record(z.string(), nonNegative)),
});

export function parseCostTable(value: unknown, file = 'costs.json'): CostTable {
  const r = costTableSchema.safeParse(value);
  if (!r.success) {
    const issue = r.error.issues[0];
    const path = issue?.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('') ?? '';
    throw new MtpdError('ERR_MTPD_CONFIG', `${file}: ${path ? `${path.replace(/^\./, '')}: ` : ''}${issue?.message ?? 'invalid'}`);
  }
  const table = r.data as CostTable;
  for (const a of Object.keys(table.costs)) {
    if (!Object.hasOwn(table.models, a)) throw new MtpdError('ERR_MTPD_CONFIG', `${file}: costs names model "${a}", which is not in models`);
    for (const b of Object.keys(table.costs[a] ?? {})) {
      if (!Object.hasOwn(table.models, b)) throw new MtpdError('ERR_MTPD_CONFIG', `${file}: costs["${a}"] names model "${b}", which is not in models`);
    }
  }
  return table;
}

export async function readCostTable(path: string): Promise<CostTable> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new MtpdError('ERR_MTPD_CONFIG', `${path}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new MtpdError('ERR_MTPD_CONFIG', `${path}: not valid JSON (${(err as Error).message})`);
  }
  return parseCostTable(json, path);
}
