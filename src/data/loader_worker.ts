/** Worker thread of DataLoader: prepares samples (decode, transforms, masks). */
import { serveWorker } from './pool.js';
import { prepareSample, transferList, type PreparedSample, type SampleJob } from './pipeline.js';

serveWorker<SampleJob, PreparedSample>(async (job) => {
  const result = await prepareSample(job);
  return { result, transfer: transferList(result) };
});
