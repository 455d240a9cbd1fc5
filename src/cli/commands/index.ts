import type { Command } from 'commander';
import { registerAudit } from './audit.js';
import { registerAuditBench } from './audit-bench.js';
import { registerBackend } from './backend.js';
import { registerCalibrate } from './calibrate.js';
import { registerData } from './data.js';
import { registerEval } from './eval.js';
import { registerReport } from './report.js';
import { registerReproduce } from './reproduce.js';
import { registerServe } from './serve.js';
import { registerTrain } from './train.js';
import { registerZoo } from './zoo.js';

/** Every CLI command, registered in this one list; only commands that work end to end belong here. */
export const COMMANDS: ReadonlyArray<(program: Command) => void> = [
  registerAudit,
  registerAuditBench,
  registerBackend,
  registerCalibrate,
  registerData,
  registerEval,
  registerReport,
  registerReproduce,
  registerServe,
  registerTrain,
  registerZoo,
];
