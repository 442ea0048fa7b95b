/**
 * ImageNet (or detector) checkpoints as a detector's backbone: the state dict of a classifier or
 * of another detector renamed onto mtpd's backbone names (`backbone.body.*`, torchvision's), with
 * everything else (the classifier's `fc` / `head`, a detector's FPN and head) reported as unused.
 *
 * Layouts recognised from the key names:
 *   torchvision-resnet  conv1.weight, layer1.0.conv1.weight, fc.*     (torchvision resnet50-0676ba61.pth, timm ResNets,
 *                                                                      mmdetection's torchvision://resnet50)
 *   torchvision-swin    features.0.0.weight, features.1.0.attn.qkv.*, norm.*, head.*   (swin_t-704ceda3.pth)
 *   swin                patch_embed.proj.weight, layers.0.blocks.0.attn.qkv.*, layers.i.downsample.*  (the
 *                       official Swin release and timm; downsampling at the end of stage i, or at the start
 *                       of stage i in timm >= 0.9)
 *   mmdet-resnet        backbone.conv1.weight, backbone.layer1.* (+ neck.*, bbox_head.*)   (an mmdetection detector)
 *   mmdet-swin          backbone.patch_embed.projection.*, backbone.stages.0.blocks.0.attn.w_msa.*, norm0..3
 *   mtpd                backbone.body.*   (an mtpd or torchvision detector)
 */
import { MtpdError } from '../errors.js';
import type { Tensor } from '../tensor.js';
import type { StateDict } from './safetensors.js';

export type BackboneLayout = 'torchvision-resnet' | 'torchvision-swin' | 'swin' | 'mmdet-resnet' | 'mmdet-swin' | 'mtpd';

export interface BackboneTensors {
  layout: BackboneLayout;
  /** Renamed onto the detector's names (backbone.body.*). */
  tensors: StateDict;
  /** Keys of the checkpoint that are not part of a backbone (classifier head, FPN, detection head, buffers rebuilt here). */
  unused: string[];
}

const BODY = 'backbone.body.';

export function detectBackboneLayout(keys: readonly string[], source = 'backbone'): BackboneLayout {
  const has = (k: string) => keys.includes(k);
  const some = (p: string) => keys.some((k) => k.startsWith(p));
  if (some(BODY)) return 'mtpd';
  if (has('conv1.weight') && some('layer1.')) return 'torchvision-resnet';
  if (has('features.0.0.weight') && some('features.1.0.attn.')) return 'torchvision-swin';
  if (has('patch_embed.proj.weight') && some('layers.0.blocks.0.')) return 'swin';
  if (has('backbone.conv1.weight') && some('backbone.layer1.')) return 'mmdet-resnet';
  if (has('backbone.patch_embed.projection.weight') && some('backbone.stages.0.blocks.0.')) return 'mmdet-swin';
  throw new MtpdError(
    'ERR_MTPD_WEIGHTS',
    `${source}: not a backbone checkpoint of a known layout (torchvision or timm ResNet/Swin, the official Swin release, an mmdetection or mtpd detector); its first keys: ${keys.slice(0, 5).join(', ')}`,
  );
}

/**
 * mmdetection's PatchMerging flattens each 2x2 neighbourhood with nn.Unfold (input feature
 * u = c * 4 + i * 2 + j for row offset i, column offset j); torchvision's concatenates
 * x[0::2, 0::2], x[1::2, 0::2], x[0::2, 1::2], x[1::2, 1::2] (t = q * C + c, q = i + 2 j).
 * Reorders the last axis of a (..., 4C) tensor from mmdetection's order to torchvision's.
 */
export function unfoldToConcatOrder(t: Tensor, name: string): Tensor {
  const n = t.shape[t.shape.length - 1] as number;
  if (n % 4 !== 0) throw new MtpdError('ERR_MTPD_WEIGHTS', `${name}: last dimension ${n} is not 4 * channels`);
  const C = n / 4;
  const rows = t.data.length / n;
  const src = t.data as Float32Array;
  const out = new (src.constructor as new (k: number) => Float32Array)(src.length);
  for (let r = 0; r < rows; r++) {
    for (let q = 0; q < 4; q++) {
      const i = q % 2;
      const j = q >> 1;
      for (let c = 0; c < C; c++) out[r * n + q * C + c] = src[r * n + c * 4 + i * 2 + j] as number;
    }
  }
  return { ...t, data: out } as Tensor;
}

/** Official/timm Swin key -> torchvision's (features.*), or null when it is not part of the backbone. */
function swinName(k: string, downsampleAtEnd: boolean): string | null {
  let m: RegExpExecArray | null;
  if ((m = /^patch_embed\.proj\.(weight|bias)$/.exec(k))) return `features.0.0.${m[1]}`;
  if ((m = /^patch_embed\.norm\.(weight|bias)$/.exec(k))) return `features.0.2.${m[1]}`;
  if ((m = /^layers\.(\d+)\.blocks\.(\d+)\.(.+)$/.exec(k))) {
    const rest = (m[3] as string).replace(/^mlp\.fc1\./, 'mlp.0.').replace(/^mlp\.fc2\./, 'mlp.3.');
    if (/relative_position_index$|attn_mask$/.test(rest)) return null;
    return `features.${2 * Number(m[1]) + 1}.${m[2]}.${rest}`;
  }
  if ((m = /^layers\.(\d+)\.downsample\.(reduction\.weight|norm\.weight|norm\.bias)$/.exec(k))) {
    const stage = Number(m[1]);
    return `features.${downsampleAtEnd ? 2 * stage + 2 : 2 * stage}.${m[2]}`;
  }
  return null;
}

/** mmdetection Swin key (without `backbone.`) -> torchvision's, or null. */
export function mmdetSwinName(k: string): string | null {
  let m: RegExpExecArray | null;
  if ((m = /^patch_embed\.projection\.(weight|bias)$/.exec(k))) return `features.0.0.${m[1]}`;
  if ((m = /^patch_embed\.norm\.(weight|bias)$/.exec(k))) return `features.0.2.${m[1]}`;
  if ((m = /^stages\.(\d+)\.blocks\.(\d+)\.(.+)$/.exec(k))) {
    const rest = (m[3] as string)
      .replace(/^attn\.w_msa\./, 'attn.')
      .replace(/^ffn\.layers\.0\.0\./, 'mlp.0.')
      .replace(/^ffn\.layers\.1\./, 'mlp.3.');
    if (/relative_position_index$/.test(rest)) return null;
    return `features.${2 * Number(m[1]) + 1}.${m[2]}.${rest}`;
  }
  if ((m = /^stages\.(\d+)\.downsample\.(reduction\.weight|norm\.weight|norm\.bias)$/.exec(k))) return `features.${2 * Number(m[1]) + 2}.${m[2]}`;
  return null;
}

/** Renames a checkpoint's backbone onto mtpd's names; everything else is listed as unused. */
export function backboneTensors(sd: StateDict, source = 'backbone'): BackboneTensors {
  const layout = detectBackboneLayout([...sd.keys()], source);
  const tensors: StateDict = new Map();
  const unused: string[] = [];
  const put = (from: string, to: string | null, t: Tensor) => {
    if (to === null) unused.push(from);
    else tensors.set(BODY + to, t);
  };
  const downsampleAtEnd = sd.has('layers.0.downsample.reduction.weight');
  for (const [k, t] of sd) {
    switch (layout) {
      case 'mtpd':
        if (k.startsWith(BODY)) tensors.set(k, t);
        else unused.push(k);
        break;
      case 'torchvision-resnet':
        put(k, k.startsWith('fc.') ? null : k, t);
        break;
      case 'torchvision-swin':
        put(k, k.startsWith('features.') ? k : null, t);
        break;
      case 'swin':
        put(k, swinName(k, downsampleAtEnd), t);
        break;
      case 'mmdet-resnet':
        put(k, k.startsWith('backbone.') ? k.slice('backbone.'.length) : null, t);
        break;
      case 'mmdet-swin': {
        const to = k.startsWith('backbone.') ? mmdetSwinName(k.slice('backbone.'.length)) : null;
        put(k, to, to !== null && /\.downsample\.(reduction\.weight|norm\.(weight|bias))$/.test(k) ? unfoldToConcatOrder(t, k) : t);
        break;
      }
    }
  }
  return { layout, tensors, unused };
}

/** What loading a backbone checkpoint did. */
export interface BackboneLoadReport {
  layout: BackboneLayout;
  /** Tensors loaded into the backbone. */
  loaded: number;
  /** Checkpoint keys that are not part of the backbone (fc, head, FPN, ...). */
  unused: string[];
}

interface LoadsStateDict {
  loadStateDict(dict: StateDict, options: { strict?: boolean }): Promise<{ missing: string[]; unexpected: string[]; mismatched: { key: string; expected: number[]; got: number[] }[]; loaded: number }>;
}

/** Buffers the model computes itself (not in every checkpoint). */
const REBUILT = /(relative_position_index|num_batches_tracked)$/;

/**
 * Loads a backbone checkpoint's tensors into `model`'s backbone (backbone.body.*) and nothing
 * else. Every backbone tensor must be there with its shape (else an error naming them, and the
 * model is left as it was); keys of other parts of the checkpoint are returned as unused.
 */
export async function loadBackboneInto(model: LoadsStateDict, sd: StateDict, modelShapes: ReadonlyMap<string, readonly number[]>, source = 'backbone'): Promise<BackboneLoadReport> {
  const { layout, tensors, unused } = backboneTensors(sd, source);
  const modelKeys = [...modelShapes.keys()];
  const want = modelKeys.filter((k) => k.startsWith(BODY) && !REBUILT.test(k));
  const missing = want.filter((k) => !tensors.has(k));
  const known = new Set(modelKeys);
  const unexpected = [...tensors.keys()].filter((k) => !known.has(k) && !REBUILT.test(k));
  const list = (a: string[]) => `${a.slice(0, 6).join(', ')}${a.length > 6 ? `, ... (${a.length})` : ''}`;
  if (missing.length || unexpected.length) {
    throw new MtpdError(
      'ERR_MTPD_WEIGHTS',
      `${source}: a ${layout} checkpoint that does not fit this backbone: ${missing.length ? `missing ${list(missing)}` : ''}${missing.length && unexpected.length ? '; ' : ''}${unexpected.length ? `not in the model ${list(unexpected)}` : ''}`,
    );
  }
  for (const k of [...tensors.keys()]) if (!known.has(k)) tensors.delete(k);
  const misshaped = [...tensors].filter(([k, t]) => (modelShapes.get(k) ?? []).join(',') !== t.shape.join(','));
  if (misshaped.length) {
    throw new MtpdError(
      'ERR_MTPD_WEIGHTS',
      `${source}: ${misshaped.length} tensor(s) of another shape than the backbone's (another width or depth?): ${misshaped.slice(0, 4).map(([k, t]) => `${k} (model [${(modelShapes.get(k) ?? []).join(', ')}], file [${t.shape.join(', ')}])`).join(', ')}`,
    );
  }
  // the rest of the model (FPN, head) keeps its values
  const r = await model.loadStateDict(tensors, { strict: false });
  return { layout, loaded: r.loaded, unused };
}
