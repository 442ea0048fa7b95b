/**
 * The CLI's subcommands, one yargs CommandModule per file. Add a command by adding its module
 * to this list.
 */
import type { CommandModule } from 'yargs';
import { analyzeCommand } from './analyze.js';
import { costCommand } from './cost.js';
import { dataCommand } from './data.js';
import { demoCommand } from './demo.js';
import { evalCommand } from './eval.js';
import { exportCommand } from './export.js';
import { importCommand } from './import.js';
import { infoCommand } from './info.js';
import { initCommand } from './init.js';
import { ordersCommand } from './orders.js';
import { planCommand } from './plan.js';
import { trainCommand } from './train.js';
import { predictCommand } from './predict.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const commands: CommandModule<any, any>[] = [demoCommand, infoCommand, initCommand, planCommand, evalCommand, predictCommand, dataCommand, costCommand, trainCommand, ordersCommand, analyzeCommand, exportCommand, importCommand];
