import type { Command } from 'commander';
import { registerBackend } from './backend.js';
import { registerData } from './data.js';
import { registerEval } from './eval.js';
import { registerReport } from './report.js';
import { registerTrain } from './train.js';
import { registerZoo } from './zoo.js';

/** Every CLI command, registered in this one list; only commands that work end to end belong here. */
export const COMMANDS: ReadonlyArray<(program: Command) => void> = [registerBackend, registerData, registerEval, registerReport, registerTrain, registerZoo];
