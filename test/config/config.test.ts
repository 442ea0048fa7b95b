import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { parse as parseYaml } from 'yaml';
import { annotatedConfigYaml, templateConfig } from '../../src/config/init.js';
import { applyOverrides, loadConfig } from '../../src/config/load.js';
import { configJsonSchema } from '../../src/config/schema.js';
import { tempDir } from '../helpers.js';

const minimal = `# a small config
data:
  root: data/demo
student:
  name: student
  arch: retinanet_resnet18_fpn
  widthMult: 0.25
teachers:
  - name: big
    arch: retinanet_resnet50_fpn
`;

t.test('a minimal YAML config gets every default, with paths resolved against the file', async (t) => {
  const dir = tempDir(t);
  const f = join(dir, 'c.yaml');
  writeFileSync(f, minimal);
  const { config } = await loadConfig(f);
  t.equal(config.version, 1);
  t.equal(config.device, 'cpu');
  t.equal(config.data.root, join(dir, 'data/demo'));
  t.equal(config.output, join(dir, 'runs/mtpd'));
  t.equal(config.schedule.optimizer, 'sgd');
  t.equal(config.schedule.clipGradNorm, 35);
  t.equal(config.order.k, 2);
  t.equal(config.order.costs.fitter, 'closed-form');
  t.equal(config.student.widthMult, 0.25);
  t.equal(config.teachers[0]?.widthMult, 1);
  t.same(config.baselines, ['longer', 'direct', 'ensemble']);
  t.equal(config.student.norm, 'auto', "the student's setup is decided by whether it has weights");
  t.equal(config.student.trainableLayers, 'auto');
  t.same(config.distill, { loss: 'pkd', weight: 1, options: {}, cacheGiB: 1 }, 'a scale-free default distillation loss, teacher maps cached (1 GiB)');
});

t.test('an unknown or misspelled key is an error naming it with file:line', async (t) => {
  const dir = tempDir(t);
  const f = join(dir, 'c.yaml');
  writeFileSync(f, minimal.replace('  widthMult: 0.25', '  widthMult: 0.25\n  widht: 3'));
  await t.rejects(loadConfig(f), { code: 'ERR_MTPD_CONFIG', message: new RegExp(`c\\.yaml:8: unknown key "widht" in student`) });
  writeFileSync(f, `${minimal}schedul:\n  lr: 0.1\n`);
  await t.rejects(loadConfig(f), { message: /c\.yaml:11: unknown key "schedul"/ });
});

t.test('wrong types and missing keys name the key, its line and what was expected', async (t) => {
  const dir = tempDir(t);
  const f = join(dir, 'c.yaml');
  writeFileSync(f, minimal.replace('widthMult: 0.25', 'widthMult: wide'));
  await t.rejects(loadConfig(f), { message: /c\.yaml:7: student\.widthMult: .*expected number/i });
  writeFileSync(f, minimal.replace('  - name: big\n    arch: retinanet_resnet50_fpn\n', '  - name: big\n'));
  await t.rejects(loadConfig(f), { message: /teachers\[0\]\.arch: is required|teachers\[0\]\.arch: .*expected string/ });
  writeFileSync(f, `${minimal}device: gpu\n`);
  await t.rejects(loadConfig(f), { message: /c\.yaml:11: device: cpu, cuda or cuda:N/ });
  writeFileSync(f, `${minimal}  - name: student\n    arch: x\n`);
  await t.rejects(loadConfig(f), { message: /model name "student" is used twice/ });
  writeFileSync(f, `${minimal}schedule:\n  iterations: 10\n  epochs: 2\n`);
  await t.rejects(loadConfig(f), { message: /give iterations or epochs, not both/ });
});

t.test('missing files and broken YAML', async (t) => {
  const dir = tempDir(t);
  await t.rejects(loadConfig(join(dir, 'nope.yaml')), { message: /nope\.yaml: cannot read \(ENOENT\)/ });
  const f = join(dir, 'bad.yaml');
  writeFileSync(f, 'data:\n  root: x\n  root: y\n');
  await t.rejects(loadConfig(f), { message: /bad\.yaml:3: .*unique/i });
  writeFileSync(f, 'data: [1, 2\n');
  await t.rejects(loadConfig(f), { message: /bad\.yaml(:\d+)?: / });
});

t.test('a YAML alias bomb is a config error naming the file', async (t) => {
  // 9^7 strings from 7 short lines: yaml refuses to expand it, and that error named no file
  // (a bare Error, so the CLI took it for a usage error: exit 2).
  const dir = tempDir(t);
  const f = join(dir, 'bomb.yaml');
  const lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]'];
  for (const [k, prev] of [['b', 'a'], ['c', 'b'], ['d', 'c'], ['e', 'd'], ['f', 'e'], ['g', 'f']]) lines.push(`${k}: &${k} [${Array(9).fill(`*${prev}`).join(',')}]`);
  writeFileSync(f, `${lines.join('\n')}\n`);
  await t.rejects(loadConfig(f), { code: 'ERR_MTPD_CONFIG', message: /bomb\.yaml: Excessive alias count/ });
});

t.test('--set overrides nested values and list elements, parsing JSON values', async (t) => {
  const dir = tempDir(t);
  const f = join(dir, 'c.yaml');
  writeFileSync(f, minimal);
  const { config } = await loadConfig(f, ['schedule.lr=0.02', 'teachers.0.widthMult=0.5', 'data.minSize=[160,192]', 'device=cpu', 'order.k=3']);
  t.equal(config.schedule.lr, 0.02);
  t.equal(config.teachers[0]?.widthMult, 0.5);
  t.same(config.data.minSize, [160, 192]);
  t.equal(config.order.k, 3);
  await t.rejects(loadConfig(f, ['schedule.lr']), { message: /expected key\.path=value/ });
  await t.rejects(loadConfig(f, ['student.name.x=1']), { message: /student\.name is not an object/ });
  await t.rejects(loadConfig(f, ['__proto__.x=1']), { message: /bad key path/ });
  await t.rejects(loadConfig(f, ['schedule.lrr=1']), { message: /unknown key "lrr"/ });
  const o: Record<string, unknown> = {};
  applyOverrides(o, ['a.b.c=hello', 'a.n=null']);
  t.same(o, { a: { b: { c: 'hello' }, n: null } });
  const lists: Record<string, unknown> = { teachers: [{ name: 'a' }], sizes: [1] };
  applyOverrides(lists, ['teachers.0.name=b', 'sizes.1=2']);
  t.same(lists, { teachers: [{ name: 'b' }], sizes: [1, 2] }, 'an index into a list, or one past its end');
  for (const bad of ['teachers.name=x', 'teachers.1e0.name=x', 'teachers.3.name=x', 'sizes.5=1', 'sizes.-1=1']) {
    t.throws(() => applyOverrides(lists, [bad]), { code: 'ERR_MTPD_CONFIG', message: /is a list; ".*" is not one of its indices/ }, bad);
  }
  t.same(lists, { teachers: [{ name: 'b' }], sizes: [1, 2] }, 'nothing was set by the refused overrides');
});

t.test('JSON configs work too', async (t) => {
  const dir = tempDir(t);
  const f = join(dir, 'c.json');
  writeFileSync(f, JSON.stringify(parseYaml(minimal)));
  const { config } = await loadConfig(f);
  t.equal(config.teachers[0]?.name, 'big');
});

t.test('mtpd init writes a commented config that loads back unchanged', async (t) => {
  const dir = tempDir(t);
  const text = annotatedConfigYaml();
  t.match(text, /# detector builder, e\.g\. retinanet_resnet50_fpn/);
  t.match(text, /# longest teacher sequence/);
  t.match(text, /# the student's backbone norm layer in every stage it trains in .*auto = bn when the student is trained from scratch here/);
  t.match(text, /# backbone stages of the student that train.*auto = 5 when the student is trained from scratch here \(weights null\), 3 when it starts from given weights/);
  t.match(text, /# distillation loss on the FPN maps, one term per level: pkd \(default\)/);
  t.match(text, /warns above 10x/);
  const f = join(dir, 'init.yaml');
  writeFileSync(f, text);
  const { config } = await loadConfig(f);
  t.equal(config.student.arch, templateConfig().student.arch);
  t.equal(config.teachers.length, 3);
  const schema = configJsonSchema() as { properties: Record<string, unknown> };
  t.ok(schema.properties.teachers, 'JSON Schema lists the keys');
});
