/**
 * `mtpd export`: a detector's weights as a torch.save `.pth` that torchvision's builder loads
 * strictly (`model.load_state_dict(torch.load(f, weights_only=True))`), or as safetensors. The
 * weights are first loaded strictly into the named architecture, so what is written is a whole
 * model of it with torchvision's parameter names.
 */
import { extname } from 'node:path';
import { createDetector, type DetectorConfig } from './detector.js';
import { MtpdError } from './errors.js';
import type { LoadReport } from './module.js';
import { readSafetensorsHeader, saveSafetensors, sniffWeightsFormat } from './weights/index.js';
import { savePth } from './weights/pth-write.js';

export interface ExportOptions {
  /** Input weights (safetensors or .pth). */
  weights: string;
  /** Output file: `.pth` / `.pt` (torch.save format) or `.safetensors`. */
  out: string;
  /** Architecture and class count; default: the input's mtpd metadata (mtpd.arch, mtpd.num_classes). */
  arch?: string;
  numClasses?: number;
  widthMult?: number;
  /** For .pth inputs that nest the state dict. */
  key?: string;
  options?: Record<string, unknown>;
}

export interface ExportResult {
  arch: string;
  numClasses: number;
  widthMult: number;
  format: 'pth' | 'safetensors';
  tensors: number;
  load: LoadReport;
}

/** What the input's own metadata says about the model (safetensors written by mtpd). */
export async function weightsMetadata(path: string): Promise<Record<string, string>> {
  if ((await sniffWeightsFormat(path)) !== 'safetensors') return {};
  const h = (await readSafetensorsHeader(path)) as { __metadata__?: Record<string, string> };
  return h.__metadata__ ?? {};
}

export function exportFormatOf(out: string): 'pth' | 'safetensors' {
  const ext = extname(out).toLowerCase();
  if (ext === '.pth' || ext === '.pt') return 'pth';
  if (ext === '.safetensors') return 'safetensors';
  throw new MtpdError('ERR_MTPD_ARGUMENT', `--out ${out}: the extension must be .pth, .pt or .safetensors`);
}

export async function exportWeights(o: ExportOptions): Promise<ExportResult> {
  const format = exportFormatOf(o.out);
  const meta = await weightsMetadata(o.weights);
  const arch = o.arch ?? meta['mtpd.arch'];
  if (!arch) throw new MtpdError('ERR_MTPD_ARGUMENT', `--arch is needed: ${o.weights} does not say its architecture (no mtpd.arch metadata)`);
  const numClasses = o.numClasses ?? (meta['mtpd.num_classes'] !== undefined ? Number(meta['mtpd.num_classes']) : undefined);
  if (numClasses === undefined || !Number.isInteger(numClasses) || numClasses < 1) {
    throw new MtpdError('ERR_MTPD_ARGUMENT', `--num-classes is needed: ${o.weights} does not say its number of classes (no mtpd.num_classes metadata)`);
  }
  const widthMult = o.widthMult ?? (meta['mtpd.width_mult'] !== undefined ? Number(meta['mtpd.width_mult']) : 1);
  // the options `mtpd import` recorded (mmdetection's architecture options, non-default layouts)
  const options = o.options ?? (meta['mtpd.options'] !== undefined ? (JSON.parse(meta['mtpd.options']) as Record<string, unknown>) : undefined);
  const config: DetectorConfig = { arch, numClasses, widthMult, ...(options ? { options } : {}) };
  const det = await createDetector(config);
  const load = await det.loadWeights(o.weights, { strict: true, ...(o.key !== undefined ? { key: o.key } : {}) });
  const sd = await det.stateDict();
  if (format === 'pth') await savePth(o.out, sd);
  else await saveSafetensors(o.out, sd, { format: 'pt', 'mtpd.module': det.resolved.name, 'mtpd.arch': arch, 'mtpd.num_classes': String(numClasses), 'mtpd.width_mult': String(widthMult) });
  return { arch, numClasses, widthMult, format, tensors: sd.size, load };
}
