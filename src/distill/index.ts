export * from './config.js';
export * from './distiller.js';
