import t from 'tap';
import { parseConfig } from '../../src/config/load.js';
import { curriculumStages, runCurriculum, type StagePlan } from '../../src/train/curriculum.js';

const schedule = parseConfig({ data: { root: 'x' }, student: { name: 's', arch: 'retinanet_resnet18_fpn' }, teachers: [{ name: 't', arch: 'retinanet_resnet18_fpn' }], schedule: { iterations: 40 } }).schedule;

t.test('one distillation stage per teacher, in order, each a full stage schedule', async (t) => {
  const stages = curriculumStages(['r18', 'r34', 'swin'], schedule);
  t.same(
    stages.map((s) => [s.name, s.kind, s.teachers, s.method, s.role, s.step]),
    [
      ['mtpd1-r18', 'distill', ['r18'], 'mtpd', 'stage', 1],
      ['mtpd2-r34', 'distill', ['r34'], 'mtpd', 'stage', 2],
      ['mtpd3-swin', 'distill', ['swin'], 'mtpd', 'stage', 3],
    ],
  );
  for (const s of stages) {
    t.equal(s.schedule, schedule, `${s.name} restarts the stage schedule`);
    t.equal(s.ensemble, undefined);
  }
});

t.test('the student is carried over from stage to stage, and a stopped stage ends the curriculum', async (t) => {
  const calls: [string, string][] = [];
  const runner = async (plan: StagePlan, from: string) => {
    calls.push([plan.name, from]);
    return { weights: `${plan.name}.safetensors` };
  };
  t.equal(await runCurriculum(['a', 'b', 'c'], 'ots.safetensors', schedule, runner), 'mtpd3-c.safetensors');
  t.same(calls, [
    ['mtpd1-a', 'ots.safetensors'],
    ['mtpd2-b', 'mtpd1-a.safetensors'],
    ['mtpd3-c', 'mtpd2-b.safetensors'],
  ]);
  calls.length = 0;
  const stops = async (plan: StagePlan, from: string) => {
    calls.push([plan.name, from]);
    return plan.name.startsWith('mtpd2') ? null : { weights: `${plan.name}.safetensors` };
  };
  t.equal(await runCurriculum(['a', 'b', 'c'], 'ots.safetensors', schedule, stops), null);
  t.same(calls.map((c) => c[0]), ['mtpd1-a', 'mtpd2-b'], 'nothing runs after the stopped stage');
});
