/**
 * A finished run folder as `mtpd train` / `mtpd demo` write it: the resolved config
 * (config.yaml), the report (report.json), the students' weights (models/) and their
 * evaluations (eval/). Picks the students the analysis compares: the off-the-shelf student, the
 * progressive stages in order, and the baselines (training longer first among them).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Config } from '../config/schema.js';
import { MtpdError } from '../errors.js';
import { fileNameOf } from '../train/eval-cache.js';
import type { ModelResult, TrainReport } from '../train/pipeline.js';

export interface RunStudent {
  name: string;
  /** 'student' (off-the-shelf), 'mtpd' (a progressive stage), or the baseline's method. */
  method: 'student' | 'mtpd' | 'longer' | 'direct' | 'ensemble';
  /** Teacher budgets (stage schedules) spent. */
  budget: number;
  weights: string;
  /** COCO bbox stats on the validation split (from eval/ or report.json). */
  stats: number[];
}

export interface RunFolder {
  dir: string;
  config: Config;
  report: TrainReport;
  students: RunStudent[];
  /** The last progressive stage and the longer baseline: the paper's pair. */
  progressive: RunStudent | null;
  longer: RunStudent | null;
}

function methodOf(r: ModelResult): RunStudent['method'] | null {
  if (r.role === 'student') return 'student';
  if (r.role !== 'stage' && r.role !== 'baseline') return null;
  if (r.method) return r.method === 'orders' ? null : r.method;
  const m = /^(mtpd|longer|direct|ensemble)(\d|-|$)/.exec(r.name);
  return m ? (m[1] as RunStudent['method']) : null;
}

export async function openRunFolder(dir: string): Promise<RunFolder> {
  const abs = resolve(dir);
  for (const f of ['config.yaml', 'report.json']) {
    if (!existsSync(join(abs, f))) throw new MtpdError('ERR_MTPD_ARGUMENT', `${join(abs, f)}: missing; RUN must be a finished run folder of mtpd train or mtpd demo`);
  }
  const { loadConfig } = await import('../config/load.js');
  const { config } = await loadConfig(join(abs, 'config.yaml'));
  let report: TrainReport;
  try {
    report = JSON.parse(readFileSync(join(abs, 'report.json'), 'utf8')) as TrainReport;
  } catch (err) {
    throw new MtpdError('ERR_MTPD_ARGUMENT', `${join(abs, 'report.json')}: not valid JSON (${(err as Error).message})`);
  }
  if (!Array.isArray(report.results)) throw new MtpdError('ERR_MTPD_ARGUMENT', `${join(abs, 'report.json')}: no "results" list`);
  const students: RunStudent[] = [];
  for (const r of report.results) {
    const method = methodOf(r);
    if (!method) continue;
    // The weights where the report says, else in this folder's models/ (a moved run folder).
    const local = join(abs, 'models', `${fileNameOf(r.name)}.safetensors`);
    const weights = existsSync(r.weights) ? r.weights : existsSync(local) ? local : null;
    if (!weights) throw new MtpdError('ERR_MTPD_ARGUMENT', `${r.name}: weights ${r.weights} not found (nor ${local})`);
    const evalFile = join(abs, 'eval', `${fileNameOf(r.name)}.json`);
    const stats = existsSync(evalFile) ? ((JSON.parse(readFileSync(evalFile, 'utf8')) as { stats?: number[] }).stats ?? r.stats) : r.stats;
    students.push({ name: r.name, method, budget: method === 'student' ? 0 : (r.step ?? 0), weights, stats });
  }
  const progressive = students.filter((s) => s.method === 'mtpd').sort((a, b) => a.budget - b.budget).at(-1) ?? null;
  const longer = students.filter((s) => s.method === 'longer').at(-1) ?? null;
  return { dir: abs, config, report, students, progressive, longer };
}
