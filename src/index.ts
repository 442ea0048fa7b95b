/** mtpd: Multi-Teacher Progressive Distillation for lightweight object detectors. */
export { MtpdError, type ErrorCode } from './errors.js';
export { detectInstalledLibtorch, loadAddon, type BuildMeta, type LoadedAddon } from './native.js';
export { blasWarning, checkDevice, formatSystemInfo, hostMemory, releaseHostMemory, rngState, setRngState, setSeed, setThreads, systemInfo, type SystemInfo } from './runtime.js';
export type { HostMemory } from './native.js';
export { listModules, Module, type LoadReport, type ModuleOptions } from './module.js';
export { Disposer, withDisposable, type Disposable } from './dispose.js';
export * from './tensor.js';
export {
  decodeSafetensors,
  encodeSafetensors,
  loadPth,
  loadSafetensors,
  readSafetensorsHeader,
  readWeights,
  saveSafetensors,
  sniffWeightsFormat,
  writeFileAtomic,
  type PthFile,
  type ReadWeightsOptions,
  type SafetensorsFile,
  type StateDict,
  type WeightsFormat,
} from './weights/index.js';
export {
  bootstrap,
  CocoEvaluator,
  evaluate,
  evaluateFiles,
  formatSummary,
  ignoredCategoriesWarning,
  ignoredAnnotationsWarning,
  modelOf,
  pairOf,
  predictionsToResults,
  STAT_NAMES,
  type BootstrapModel,
  type BootstrapOptions,
  type BootstrapResult,
  type CategoryStats,
  type ModelSpread,
  type PairSpread,
  type EvalOptions,
  type EvalResult,
  type IouType,
  type Predictions,
  type Summary,
} from './eval/index.js';
export * as mask from './coco/mask.js';
export { backwardGreedySelection, exhaustiveSearch, orderByAp, type BgsResult, type CostTable } from './order/bgs.js';
export { computeCostMatrix, type CostMatrix, type CostMatrixOptions, type FeatureSource } from './order/cost-matrix.js';
export { fitLinearMap, type LinearFitOptions, type LinearFitResult } from './order/linear-fit.js';
export { readCostTable, parseCostTable } from './order/costs-file.js';
export { loadConfig, parseConfig, applyOverrides } from './config/load.js';
export { configSchema, configJsonSchema, type Config, type ConfigInput, type ModelConfig, type Schedule, type StudentConfig } from './config/schema.js';
export {
  createDetector,
  Detector,
  resolveDetectorConfig,
  type Detection,
  type DetectorConfig,
  type DetectorInfo,
  type FeatureBatch,
  type RunResult,
  type RunWhat,
  type Target,
  type TrainStepResult,
} from './detector.js';
export { Optimizer, OptimizerOptionsSchema, type OptimizerInfo, type OptimizerOptions } from './optim.js';
export { decodeImage, predictFiles, type CocoDetection, type PredictOptions } from './predict.js';
export * as data from './data/index.js';
export { CocoDataset, DataLoader, writeSynthDataset, type LoaderBatch, type LoaderOptions, type LoaderPosition } from './data/index.js';
export {
  alignMap,
  validCells,
  Distiller,
  DistillSession,
  distillStep,
  distillerConfigSchema,
  FeatureCache,
  fgdMasks,
  listLosses,
  padBatch,
  weightsHash,
  type DistillBatch,
  type DistillerConfig,
  type DistillStepOptions,
  type DistillStepResult,
  type FeatureKey,
  type FeatureMaps,
  type AlignedMap,
  type LossContext,
  type MapLayout,
  type TeacherSpec,
} from './distill/index.js';
export { train, formatResults, formatRunSummary, formatRunSummaryWithSpreads, bootstrapRunSummary, type TrainOptions, type TrainReport, type ModelResult, type PipelineEvent, type Baseline } from './train/pipeline.js';
export { bootstrapRun, evalPaths, readDetections } from './train/eval-cache.js';
export { describeComparison, formatSummaryMarkdown, formatSummaryTable, type Comparison, type SummaryInput, type SummaryRow } from './report/summary.js';
export { curriculumStages, runCurriculum, type Method, type StagePlan, type StageRunner } from './train/curriculum.js';
export { baselineStage, budgetSchedule, runBaseline, BASELINES } from './train/baselines.js';
export { formatOrders, orderStages, runOrders, type OrderRow, type OrdersOptions, type OrdersReport } from './train/orders.js';
export { analyze, formatAnalysisMarkdown, normalizeFilters, powerIteration, randomDirection, type AnalysisResult, type AnalyzeOptions, type Observation } from './analyze/index.js';
export { formatStudentSetup, resolveStudentSetup, type StudentSetup } from './train/student-setup.js';
export { stageSeed } from './train/stage-seed.js';
export { runDemo, demoConfig, DEMO_POOL, type DemoOptions } from './demo.js';
export { ProcessGroup, distBackends, type GroupOptions, type NativeGradSyncHandle } from './dist/group.js';
export { dist, distEnv, endDist, initDist, isMainRank, type Dist, type DistEnv } from './dist/context.js';
export { launch, type LaunchOptions, type LaunchResult } from './dist/launch.js';
