/**
 * Distiller configuration: which student tap meets which teacher tap, with which losses,
 * weights and per-loss options. The native side checks every option again and names the key.
 */
import { z } from 'zod';

export const LOSS_TYPES = ['mse', 'cwd', 'fgd', 'mgd', 'pkd'] as const;

export const lossEntrySchema = z.strictObject({
  /** A registered loss: mse (feature matching), cwd, fgd (needs GT boxes), mgd, pkd. */
  type: z.string().min(1),
  /** Key part in the loss names (default: the type); needed for two losses of one type on one pair. */
  name: z.string().regex(/^[A-Za-z0-9_-]+$/).optional(),
  /** Multiplies every term of this loss. */
  weight: z.number().finite().default(1),
  /** The loss's own options with the original keyword names (alpha_fgd, tau, lambda_mgd, ...). */
  options: z.record(z.string(), z.unknown()).default({}),
});

const channels = z.number().int().positive();
const resize = z.enum(['bilinear', 'nearest', 'none']);

export const pairSchema = z.strictObject({
  student: z.string().min(1),
  /** Defaults to the student tap. */
  teacher: z.string().min(1).optional(),
  /** Key part in the loss names; defaults to the tap ("p3") or "student-teacher". */
  name: z.string().regex(/^[A-Za-z0-9_-]+$/).optional(),
  losses: z.array(lossEntrySchema).min(1),
  student_channels: channels.optional(),
  teacher_channels: channels.optional(),
  resize: resize.optional(),
});

export const distillerConfigSchema = z
  .strictObject({
    student_channels: channels.optional(),
    teacher_channels: channels.optional(),
    /** How the adapter resizes a student map to the teacher's size (after its 1x1 conv). */
    resize: resize.optional(),
    /** Seeds random parts (MGD's masks); default: drawn from libtorch's default generator. */
    seed: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER).optional(),
    pairs: z.array(pairSchema).min(1).optional(),
    /** Shorthand: the same losses on these same-named taps. */
    taps: z.array(z.string().min(1)).min(1).optional(),
    losses: z.array(lossEntrySchema).min(1).optional(),
  })
  .refine((c) => (c.pairs === undefined) !== (c.taps === undefined), {
    message: 'give either "pairs" or "taps" (with "losses")',
  })
  .refine((c) => c.taps === undefined || c.losses !== undefined, { message: '"taps" needs "losses"', path: ['losses'] });

export type DistillerConfig = z.input<typeof distillerConfigSchema>;
export type ResolvedDistillerConfig = z.output<typeof distillerConfigSchema>;
