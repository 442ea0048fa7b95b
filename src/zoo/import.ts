/**
 * `mtpd import`: an mmdetection RetinaNet or two-stage (Cascade Mask R-CNN, Mask R-CNN) checkpoint,
 * or a torchvision Mask R-CNN / Faster R-CNN state dict (v1 or _v2), as mtpd safetensors, with a
 * report of what it held.
 */
import { createDetector, isCascade } from '../detector.js';
import { loadPth } from '../weights/pth.js';
import { saveSafetensors } from '../weights/safetensors.js';
import { classNamesOf, readMmdetRetinaNet } from './mmdet.js';
import { mmdetTwoStageFromStateDict, twoStageLayout } from './mmdet-two-stage.js';
import { torchvisionTwoStageLayout } from './torchvision.js';

export interface ImportResult {
  arch: string;
  numClasses: number;
  classNames: string[] | null;
  /** coco80: mmdetection's COCO checkpoints; coco91: torchvision's (outputs by COCO category id). */
  classes: 'coco80' | 'coco91' | 'dataset';
  /** Whose checkpoint it was (absent: mmdetection, as before torchvision imports existed). */
  source?: 'mmdetection' | 'torchvision';
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

/**
 * A torchvision two-stage state dict (maskrcnn_resnet50_fpn(_v2), fasterrcnn_resnet50_fpn(_v2)
 * and the same layouts over other ResNets) as mtpd safetensors; null when `checkpoint` is not one.
 */
export async function importTorchvision(checkpoint: string, out: string): Promise<ImportResult | null> {
  const f = await loadPth(checkpoint);
  const layout = torchvisionTwoStageLayout(f.tensors, checkpoint);
  if (!layout) return null;
  const { width_mult: widthMult, ...options } = layout.options as { width_mult?: number } & Record<string, unknown>;
  const det = await createDetector({ arch: layout.arch, numClasses: layout.numClasses, ...(widthMult !== undefined ? { widthMult } : {}), options });
  const r = await det.loadStateDict(f.tensors, { strict: false });
  const unexpected = [...r.unexpected, ...r.mismatched.map((m) => `${m.key} (shape [${m.got.join(', ')}], model [${m.expected.join(', ')}])`)];
  // FrozenBatchNorm2d has no num_batches_tracked (v1 checkpoints of a BatchNorm2d-trained model carry it)
  const known = new Set((await det.stateDict()).keys());
  const ignored = [...f.tensors.keys()].filter((k) => k.endsWith('.num_batches_tracked') && !known.has(k)).length;
  await det.saveWeights(out, {
    'mtpd.module': layout.masks ? 'mask_rcnn' : 'faster_rcnn',
    'mtpd.options': JSON.stringify(options),
    'mtpd.source': `torchvision ${checkpoint.split(/[\\/]/).pop() ?? checkpoint}`,
  });
  const classes = layout.numClasses === 90 ? 'coco91' : 'dataset';
  return { arch: layout.arch, numClasses: layout.numClasses, classNames: null, classes, source: 'torchvision', options: layout.options, loaded: r.loaded, missing: r.missing, unexpected, ignored };
}

/** `mtpd import`: a torchvision two-stage state dict, else an mmdetection checkpoint. */
export async function importCheckpoint(checkpoint: string, out: string): Promise<ImportResult> {
  return (await importTorchvision(checkpoint, out)) ?? { ...(await importMmdet(checkpoint, out)), source: 'mmdetection' };
}
