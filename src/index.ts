/** mtpd: Multi-Teacher Progressive Distillation for lightweight object detectors. */
export { MtpdError, type ErrorCode } from './errors.js';
