/**
 * Error classes with stable `code`s. Native errors arrive as TypeError / RangeError / Error
 * with a code set by the binding (ERR_MTPD_ARGUMENT, ERR_MTPD_SHAPE, ERR_MTPD_TORCH,
 * ERR_MTPD_OUT_OF_MEMORY, ERR_MTPD_BUSY); TS-side failures use MtpdError.
 */
export type ErrorCode =
  | 'ERR_MTPD_ADDON_NOT_FOUND'
  | 'ERR_MTPD_ADDON_INCOMPATIBLE'
  | 'ERR_MTPD_ARGUMENT'
  | 'ERR_MTPD_SHAPE'
  | 'ERR_MTPD_TORCH'
  | 'ERR_MTPD_OUT_OF_MEMORY'
  | 'ERR_MTPD_BUSY'
  | 'ERR_MTPD_DISPOSED'
  | 'ERR_MTPD_WEIGHTS'
  | 'ERR_MTPD_UNSAFE_PICKLE'
  | 'ERR_MTPD_CONFIG'
  | 'ERR_MTPD_DATA'
  | 'ERR_MTPD_EVAL'
  | 'ERR_MTPD_NONFINITE_LOSS'
  | 'ERR_MTPD_ABORTED'
  | 'ERR_MTPD_DIST'
  | 'ERR_MTPD_NATIVE'
  | 'ERR_MTPD_JOBS';

export class MtpdError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'MtpdError';
    this.code = code;
  }
}

/** Appends the JS call site to an error that came back from a native worker thread. */
export function withCallSite<E>(err: E, callSite: string | undefined): E {
  if (err instanceof Error && callSite) {
    const lines = callSite.split('\n').slice(1).join('\n');
    err.stack = `${err.name}: ${err.message}\n${lines}`;
  }
  return err;
}

/**
 * JSON for options handed to the addon. JSON.stringify writes NaN and +-Infinity as null, which
 * the addon reads as "not given" (the default): `widthMult: NaN` built a full-width model. A
 * non-finite number anywhere in `value` is an ERR_MTPD_ARGUMENT naming its key path instead.
 */
export function optionsJson(value: unknown, what: string): string {
  const seen = new Set<unknown>();
  const visit = (v: unknown, path: string): void => {
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) throw new MtpdError('ERR_MTPD_ARGUMENT', `${what}: ${path || 'value'} must be a finite number, got ${v}`);
      return;
    }
    if (typeof v !== 'object' || v === null || seen.has(v)) return;
    seen.add(v);
    if (Array.isArray(v)) v.forEach((x, i) => visit(x, `${path}[${i}]`));
    else for (const [k, x] of Object.entries(v)) visit(x, path ? `${path}.${k}` : k);
  };
  visit(value, '');
  return JSON.stringify(value);
}
