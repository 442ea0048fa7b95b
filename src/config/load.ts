/**
 * Reading configs: YAML or JSON, `--set a.b=c` overrides, checked against the schema with
 * errors that name the key and its file:line. Cross-field rules (unique model names, known
 * order names) are checked here too.
 */
import { readFile } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import { isMap, isSeq, LineCounter, parseDocument, type Node } from 'yaml';
import { MtpdError } from '../errors.js';
import { type Config, configSchema } from './schema.js';

type PathKey = string | number;

function configError(msg: string): never {
  throw new MtpdError('ERR_MTPD_CONFIG', msg);
}

function formatPath(path: readonly PathKey[]): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`)).join('');
}

/** The line (1-based) of the deepest node the path reaches in the YAML document. */
function lineOf(doc: ReturnType<typeof parseDocument>, counter: LineCounter, path: readonly PathKey[]): number | null {
  let node: unknown = doc.contents;
  let line: number | null = null;
  const at = (n: unknown) => {
    const r = (n as Node | null)?.range;
    if (r) line = counter.linePos(r[0]).line;
  };
  at(node);
  for (const key of path) {
    if (isMap(node)) {
      const pair = node.items.find((p) => String((p.key as { value?: unknown })?.value ?? p.key) === String(key));
      if (!pair) break;
      at(pair.key);
      node = pair.value;
    } else if (isSeq(node) && typeof key === 'number') {
      node = node.items[key];
      at(node);
    } else break;
  }
  return line;
}

/** Parses a `--set` value: JSON when it parses (numbers, booleans, null, arrays), else a string. */
function parseValue(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
}

export function applyOverrides(obj: Record<string, unknown>, sets: string[]): void {
  for (const s of sets) {
    const eq = s.indexOf('=');
    if (eq <= 0) configError(`--set ${s}: expected key.path=value`);
    const keys = s.slice(0, eq).split('.');
    if (keys.some((k) => k === '' || k === '__proto__' || k === 'constructor' || k === 'prototype')) configError(`--set ${s}: bad key path`);
    let cur: Record<string, unknown> | unknown[] = obj;
    // In a list, a key must be an element index (else `teachers.name=x` set a property the
    // schema never sees, and the override was silently lost).
    const index = (list: unknown[], k: string, i: number, extend: boolean): number => {
      const idx = /^\d+$/.test(k) ? Number(k) : NaN;
      if (!(idx < list.length + (extend ? 1 : 0))) {
        configError(`--set ${s}: ${keys.slice(0, i).join('.')} is a list; "${k}" is not one of its indices (0..${list.length - (extend ? 0 : 1)})`);
      }
      return idx;
    };
    for (let i = 0; i < keys.length - 1; i++) {
      const k = keys[i] as string;
      const idx = Array.isArray(cur) ? index(cur, k, i, false) : NaN;
      const next: unknown = Array.isArray(cur) ? cur[idx] : (cur as Record<string, unknown>)[k];
      if (next === undefined || next === null) {
        if (Array.isArray(cur)) configError(`--set ${s}: ${keys.slice(0, i + 1).join('.')} is not an element`);
        (cur as Record<string, unknown>)[k] = {};
      } else if (typeof next !== 'object') configError(`--set ${s}: ${keys.slice(0, i + 1).join('.')} is not an object`);
      cur = (Array.isArray(cur) ? cur[idx] : (cur as Record<string, unknown>)[k]) as Record<string, unknown>;
    }
    const last = keys[keys.length - 1] as string;
    if (Array.isArray(cur)) cur[index(cur, last, keys.length - 1, true)] = parseValue(s.slice(eq + 1));
    else cur[last] = parseValue(s.slice(eq + 1));
  }
}

export interface LoadedConfig {
  config: Config;
  /** The config file's path (null when built from an object). */
  file: string | null;
}

/** Validates a plain object (already parsed). `where` maps a key path to "file:line" for messages. */
export function parseConfig(raw: unknown, where: (path: readonly PathKey[]) => string = (p) => formatPath(p)): Config {
  const r = configSchema.safeParse(raw);
  if (!r.success) {
    const lines = r.error.issues.slice(0, 8).map((issue) => {
      const path = issue.path as PathKey[];
      let msg = issue.message;
      if (issue.code === 'unrecognized_keys') {
        const keys = (issue as { keys: string[] }).keys;
        return `${where([...path, keys[0] as string])}: unknown key "${keys.join('", "')}"${path.length ? ` in ${formatPath(path)}` : ''}`;
      }
      if (issue.code === 'invalid_type' && /received undefined/.test(msg)) msg = 'is required';
      return `${where(path)}: ${formatPath(path) || '(top level)'}: ${msg}`;
    });
    configError(`invalid config:\n  ${lines.join('\n  ')}`);
  }
  const config = r.data;
  const names = [config.student.name, ...config.teachers.map((t) => t.name)];
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup) configError(`${where(['teachers'])}: model name "${dup}" is used twice`);
  if (config.order.method === 'given') {
    if (!config.order.given?.length) configError(`${where(['order'])}: order.method "given" needs order.given`);
    for (const g of config.order.given) {
      if (!config.teachers.some((t) => t.name === g)) configError(`${where(['order', 'given'])}: order.given names "${g}", which is not a teacher`);
    }
  }
  return config;
}

/** Reads a YAML or JSON config file, applies `--set` overrides, validates, and resolves paths. */
export async function loadConfig(file: string, sets: string[] = []): Promise<LoadedConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    configError(`${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  const counter = new LineCounter();
  const doc = parseDocument(text, { lineCounter: counter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length) {
    const e = doc.errors[0];
    const line = e?.pos ? counter.linePos(e.pos[0]).line : null;
    configError(`${file}${line ? `:${line}` : ''}: ${e?.message.split('\n')[0] ?? 'not valid YAML/JSON'}`);
  }
  let raw: Record<string, unknown>;
  try {
    // toJS() expands aliases; it refuses an alias bomb ("Excessive alias count ...") by throwing.
    raw = (doc.toJS() ?? {}) as Record<string, unknown>;
  } catch (err) {
    configError(`${file}: ${(err as Error).message}`);
  }
  if (typeof raw !== 'object' || Array.isArray(raw)) configError(`${file}: the config must be a mapping of keys`);
  applyOverrides(raw, sets);
  const where = (path: readonly PathKey[]) => {
    const line = lineOf(doc, counter, path);
    return `${file}${line ? `:${line}` : ''}`;
  };
  const config = parseConfig(raw, where);
  const base = resolve(file, '..');
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(base, p));
  config.data.root = abs(config.data.root);
  config.output = abs(config.output);
  for (const m of [config.student, ...config.teachers]) if (m.weights) m.weights = abs(m.weights);
  return { config, file };
}
