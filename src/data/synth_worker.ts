/** Worker thread of `writeSynthDataset`: draws one image, writes its PNG, returns its annotations. */
import { serveWorker } from './pool.js';
import { renderSynthFile, type SynthFileRequest, type SynthFileResult } from './synth.js';

serveWorker<SynthFileRequest, SynthFileResult>(async (req) => ({ result: await renderSynthFile(req) }));
