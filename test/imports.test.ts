/**
 * The import graph of src/: no cycles among runtime imports (static or dynamic; `import type`
 * is erased and does not count), and the layering distill <- train: src/distill/ (losses,
 * distillers, the distillation step) never imports the training orchestration of src/train/.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import t from 'tap';
import { packageRoot } from '../src/native.js';

type Graph = Map<string, string[]>;

/** Runtime imports of every .ts file under `root` (relative specifiers only, resolved to files). */
function importGraph(files: Map<string, string>): Graph {
  const g: Graph = new Map();
  for (const [f, src] of files) {
    const deps: string[] = [];
    for (const m of src.matchAll(/^\s*(?:import|export)\s+(type\s+)?(?:[^'";]*?\s+from\s+)?['"](\.[^'"]+)['"]/gm)) {
      if (!m[1]) deps.push(resolve(dirname(f), (m[2] as string).replace(/\.js$/, '.ts')));
    }
    for (const m of src.matchAll(/import\(\s*['"](\.[^'"]+)['"]\s*\)/g)) deps.push(resolve(dirname(f), (m[1] as string).replace(/\.js$/, '.ts')));
    g.set(f, deps.filter((d) => files.has(d)));
  }
  return g;
}

/** Every cycle found by a depth-first walk, as "a -> b -> a". */
function cycles(g: Graph, root: string): string[] {
  const state = new Map<string, 1 | 2>();
  const stack: string[] = [];
  const out: string[] = [];
  const walk = (f: string) => {
    state.set(f, 1);
    stack.push(f);
    for (const d of g.get(f) ?? []) {
      if (state.get(d) === 1) out.push([...stack.slice(stack.indexOf(d)), d].map((x) => relative(root, x)).join(' -> '));
      else if (!state.has(d)) walk(d);
    }
    stack.pop();
    state.set(f, 2);
  };
  for (const f of g.keys()) if (!state.has(f)) walk(f);
  return out;
}

function readTree(root: string): Map<string, string> {
  const files = new Map<string, string>();
  const walk = (d: string) => {
    for (const e of readdirSync(d)) {
      const p = join(d, e);
      if (statSync(p).isDirectory()) walk(p);
      else if (p.endsWith('.ts')) files.set(p, readFileSync(p, 'utf8'));
    }
  };
  walk(root);
  return files;
}

t.test('the checker finds a cycle through a folder and ignores type-only imports', async (t) => {
  const r = '/x';
  const files = new Map([
    ['/x/a/one.ts', "import { b } from '../b.js';\nimport type { C } from '../c.js';\n"],
    ['/x/b.ts', "export { one } from './a/one.js';\n"],
    ['/x/c.ts', "import type { B } from './b.js';\nexport const c = await import('./d.js');\n"],
    ['/x/d.ts', "import type { C } from './c.js';\n"],
  ]);
  t.same(cycles(importGraph(files), r), ['a/one.ts -> b.ts -> a/one.ts']);
  files.set('/x/d.ts', "import { c } from './c.js';\n");
  t.same(cycles(importGraph(files), r).sort(), ['a/one.ts -> b.ts -> a/one.ts', 'c.ts -> d.ts -> c.ts']);
});

t.test('src/ has no import cycles, and src/distill/ does not import src/train/', async (t) => {
  const root = join(packageRoot, 'src');
  const files = readTree(root);
  const g = importGraph(files);
  t.ok(g.size > 50, `read ${g.size} files`);
  t.same(cycles(g, root), [], 'no cycles');
  const up = [...g].flatMap(([f, deps]) => (relative(root, f).startsWith('distill/') ? deps.filter((d) => relative(root, d).startsWith('train/')).map((d) => `${relative(root, f)} -> ${relative(root, d)}`) : []));
  t.same(up, [], 'distill/ is below train/');
});
