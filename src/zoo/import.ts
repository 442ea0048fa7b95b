/** `mtpd import`: an mmdetection RetinaNet or two-stage (Cascade Mask R-CNN, Mask R-CNN) checkpoint as mtpd safetensors, with a report of what it held. */
import { createDetector, isCascade } from '../detector.js';
import { loadPth } from '../weights/pth.js';
import { saveSafetensors } from '../weights/safetensors.js';
import { classNamesOf, readMmdetRetinaNet } from './mmdet.js';
import { mmdetTwoStageFromStateDict, twoStageLayout } from './mmdet-two-stage.js';

export interface ImportResult {
  arch: string;
  numClasses: number;
  classNames: string[] | null;
  classes: 'coco80' | 'dataset';
  options: Record<string, unknown>;
  loaded: number;
  /** The architecture's tensors the checkpoint does not have. */
  missing: string[];
  /** Checkpoint tensors the architecture has no place for (mmdetection names). */
  unexpected: string[];
  /** Bookkeeping tensors not carried over (BatchNorm num_batches_tracked, Swin relative_position_index). */
  ignored: number;
}

export async function importMmdet(checkpoint: string, out: string): Promise<ImportResult> {
  const f = await loadPth(checkpoint);
  const ck = twoStageLayout(f.tensors, checkpoint) ? mmdetTwoStageFromStateDict(f.tensors, classNamesOf(f.top), checkpoint) : await readMmdetRetinaNet(checkpoint);
  const det = await createDetector({ arch: ck.arch, numClasses: ck.numClasses, options: ck.options });
  const r = await det.loadStateDict(ck.tensors, { strict: false });
  const known = new Set((await det.stateDict()).keys());
  const unexpected = [...ck.unmapped, ...[...ck.tensors.keys()].filter((k) => !known.has(k)), ...r.mismatched.map((m) => `${m.key} (shape [${m.got.join(', ')}], model [${m.expected.join(', ')}])`)];
  const sd = await det.stateDict();
  await saveSafetensors(out, sd, {
    format: 'pt',
    'mtpd.module': isCascade(ck.arch) ? (ck.arch.startsWith('cascade_maskrcnn') ? 'cascade_mask_rcnn' : 'cascade_rcnn') : 'retinanet',
    'mtpd.arch': ck.arch,
    'mtpd.num_classes': String(ck.numClasses),
    'mtpd.options': JSON.stringify(ck.options),
    'mtpd.source': `mmdetection ${checkpoint.split(/[\\/]/).pop() ?? checkpoint}`,
    ...(ck.classNames ? { 'mtpd.classes': JSON.stringify(ck.classNames) } : {}),
  });
  // relative_position_index is a buffer the model builds itself (mmdetection's is skipped as bookkeeping)
  const missing = r.missing.filter((k) => !/\.relative_position_index$/.test(k));
  return { arch: ck.arch, numClasses: ck.numClasses, classNames: ck.classNames, classes: ck.classes, options: ck.options, loaded: r.loaded, missing, unexpected, ignored: ck.ignored.length };
}
