export * from './config.js';
export * from './distiller.js';
export * from './step.js';
export * from './feature_cache.js';
export * from './align.js';
