/**
 * What a user sees while a stage runs: a progress bar on a TTY (stage, loss, LR, it/s, ETA) on
 * stderr, plain lines every `every` steps otherwise (CI, logs).
 */
import cliProgress from 'cli-progress';

export interface ProgressUpdate {
  iter: number;
  total: number;
  loss: number;
  /** Omitted from the line when absent (work that is not training). */
  lr?: number;
  itPerSec: number;
  /** Appended to the line (e.g. "distill/det 1.2"). */
  note?: string;
}

export interface Progress {
  update(u: ProgressUpdate): void;
  stop(): void;
}

function fmtEta(sec: number): string {
  if (!Number.isFinite(sec)) return '?';
  const s = Math.round(sec);
  return s >= 3600 ? `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m` : s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

export function createProgress(stage: string, total: number, options: { stream?: NodeJS.WriteStream; every?: number; quiet?: boolean } = {}): Progress {
  const stream = options.stream ?? process.stderr;
  if (options.quiet) return { update: () => undefined, stop: () => undefined };
  if (stream.isTTY) {
    const bar = new cliProgress.SingleBar(
      {
        stream,
        format: `${stage} |{bar}| {value}/{total} loss {loss}{lr} {rate} it/s ETA {eta_h}{note}`,
        barsize: 24,
        hideCursor: true,
        clearOnComplete: false,
      },
      cliProgress.Presets.shades_classic,
    );
    bar.start(total, 0, { loss: '-', lr: '', rate: '-', eta_h: '?', note: '' });
    return {
      update: (u) =>
        bar.update(u.iter, {
          loss: u.loss.toFixed(4),
          lr: u.lr === undefined ? '' : ` lr ${u.lr.toExponential(2)}`,
          rate: u.itPerSec.toFixed(2),
          eta_h: fmtEta((u.total - u.iter) / Math.max(u.itPerSec, 1e-9)),
          note: u.note ? ` ${u.note}` : '',
        }),
      stop: () => bar.stop(),
    };
  }
  const every = options.every ?? Math.max(1, Math.round(total / 20));
  return {
    update: (u) => {
      if (u.iter % every === 0 || u.iter === u.total) {
        stream.write(
          `${stage} ${u.iter}/${u.total} loss ${u.loss.toFixed(4)}${u.lr === undefined ? '' : ` lr ${u.lr.toExponential(2)}`} ${u.itPerSec.toFixed(2)} it/s ETA ${fmtEta((u.total - u.iter) / Math.max(u.itPerSec, 1e-9))}${u.note ? ` ${u.note}` : ''}\n`,
        );
      }
    },
    stop: () => undefined,
  };
}
