import { z } from 'zod';
import type { NamedTensorMap, Tensor1D, Tensor2D, Variable } from '../backend/index.js';
import { Errors } from '../errors.js';
import type { Classifier } from './classifier.js';

/** A family's hyperparameters: plain JSON, stored in model.json and the manifest. */
export type FamilyConfig = Record<string, unknown>;

/** `[height, width, channels]`, three positive integers. */
export const inputShapeSchema = z.tuple([z.number().int().positive(), z.number().int().positive(), z.number().int().positive()]);

/**
 * `config` read through a family's schema: the typed config every engine computes from (tfjs, and
 * the ONNX export), defaults filled; a config the schema refuses is BAD_MODEL naming `where`.
 *
 * @example
 *   const c = typedConfig(mlpConfigSchema, artifact.modelJson.config, artifact.id);
 */
export function typedConfig<S extends z.ZodType>(schema: S, config: unknown, where: string): z.output<S> {
  const parsed = schema.safeParse(config);
  if (!parsed.success) throw Errors.badModel(where, `its family config does not fit: ${z.prettifyError(parsed.error).replace(/\n/g, '; ')}`);
  return parsed.data;
}

/**
 * {@link typedConfig} for `build`, which owns `weights`: a config that does not fit disposes them
 * before the BAD_MODEL error, so a refused model leaves no tensors behind.
 */
export function buildConfig<S extends z.ZodType>(schema: S, config: unknown, id: string, weights: NamedTensorMap): z.output<S> {
  try {
    return typedConfig(schema, config, id);
  } catch (e) {
    for (const t of Object.values(weights)) t.dispose();
    throw e;
  }
}

/** One training option a family accepts on the `train` command line, with its default. */
export interface TrainOption {
  name: string;
  type: 'int' | 'float' | 'bool' | 'string' | 'ints';
  default: number | boolean | string | number[];
  help: string;
}

/** What one optimisation step reports. */
export interface StepResult {
  loss: number;
}

/**
 * A model under training: variables, the optimiser's state, and one step. Everything here is
 * checkpointable: variables and optimiser state are named tensors; `epochStart` derives the
 * schedule from the epoch number alone, so a resumed run continues exactly.
 */
export interface Trainer {
  readonly model: Classifier;
  readonly variables: Record<string, Variable>;
  /** Called before each epoch (0-based): learning-rate, temperature and momentum schedules. */
  epochStart(epoch: number): void;
  /** One minibatch step. `seed` is unique per step, for dropout and attack noise. */
  step(x: Tensor2D, labels: Tensor1D, seed: number): StepResult;
  optimizerState(): Promise<NamedTensorMap>;
  setOptimizerState(state: NamedTensorMap): Promise<void>;
  dispose(): void;
}

/** The training schedule a family fixes: epochs and batch size, which the CLI may override. */
export interface TrainDefaults {
  epochs: number;
  batch: number;
}

/**
 * A model family: how to read its options, create fresh weights, rebuild a classifier from weights,
 * and train. Families are registered in one list (`registry.ts`).
 */
export interface Family {
  readonly name: string;
  readonly summary: string;
  readonly options: readonly TrainOption[];
  readonly training: TrainDefaults;
  /** What a config of this family is; `build` reads every loaded model's config through it ({@link typedConfig}). */
  readonly schema: z.ZodType;
  /** The full config from parsed options (defaults filled, derived values computed). */
  configure(options: Record<string, unknown>): FamilyConfig;
  /** Fresh weights for a config, deterministic under `seed`. */
  init(config: FamilyConfig, seed: number): NamedTensorMap;
  /** A classifier over the given weights; it takes ownership of them. */
  build(id: string, config: FamilyConfig, weights: NamedTensorMap): Classifier;
  /** A trainer over variables made from `weights`. */
  trainer(config: FamilyConfig, weights: NamedTensorMap): Trainer;
  /** Human notes for the manifest: choices made where the paper is silent, facts of the trained weights. */
  notes(config: FamilyConfig, weights: NamedTensorMap): string[];
}
