/**
 * Models computed by ONNX Runtime, as {@link ModelRunner}s: the zoo's families from their exported
 * programs, and users' ONNX models from their own graphs differentiated (`user-graphs.ts`), both
 * with scores and input gradients natively; a user graph with an op the differentiation has no
 * rule for runs black-box.
 *
 * tfjs tensors go in and come out, so that the attacks stay one implementation: inputs are read
 * once (`await x.data()`), outputs are copied into new tensors the caller owns. Small tfjs
 * arithmetic (one-hot labels, an objective's gradient over `[B, C]` scores) runs in `tf.tidy`.
 */
import { tf, type Tensor1D, type Tensor2D } from '../backend/index.js';
import { Errors } from '../errors.js';
import type { LossName } from '../models/classifier.js';
import { crossEntropyOfScores, throwIfStopping, type GradEvaluation, type ModelRunner, type Objective } from '../models/runner.js';
import type { NativeGraphs, NativeProgram } from './export.js';
import { createSession, floatTensor, ort, type ProviderName } from './ort.js';

type Sessions = Partial<Record<NativeProgram, ort.InferenceSession>>;

async function floats(t: tf.Tensor): Promise<Float32Array> {
  const data = await t.data();
  return data instanceof Float32Array ? data : Float32Array.from(data);
}

async function oneHot(labels: Tensor1D, classes: number): Promise<Float32Array> {
  const y = await labels.data();
  const out = new Float32Array(y.length * classes);
  for (let i = 0; i < y.length; i++) out[i * classes + y[i]!] = 1;
  return out;
}

/** A program's float32 outputs by name, row-major with the batch first. */
type Outputs = Record<string, Float32Array>;

function outputOf(out: Outputs, name: string): Float32Array {
  const t = out[name];
  if (!t) throw Errors.badModel(name, `the native program returned no float32 '${name}'`);
  return t;
}

export interface FamilyRunnerOptions {
  id: string;
  /** The model's image shape (a user model's, from its input spec). */
  inputShape: readonly [number, number, number];
  graphs: NativeGraphs;
  provider: ProviderName;
  /**
   * Where an objective has no native program (a loss over the batch: the isometric penalty), the
   * runner that computes it: tfjs under `--engine auto`; none under `--engine onnx`, which then
   * refuses the objective.
   */
  fallback?: ModelRunner;
}

/**
 * A model on ONNX Runtime: scores, the attacks' cross-entropy and the model's own loss with their
 * input gradients in one run each, and any other score objective through the vector–Jacobian
 * program. A model without gradient programs (a user graph the differentiation cannot go through)
 * has `gradientEngine: 'none'` and refuses gradients, saying why.
 */
export class FamilyRunner implements ModelRunner {
  readonly engine: string;
  readonly gradientEngine: string;
  readonly family: string;
  readonly numClasses: number;
  readonly id: string;
  readonly inputShape: readonly [number, number, number];

  private constructor(
    private readonly o: FamilyRunnerOptions,
    private readonly sessions: Sessions,
  ) {
    this.id = o.id;
    this.inputShape = o.inputShape;
    this.family = o.graphs.family;
    this.numClasses = o.graphs.numClasses;
    this.engine = `onnx-${o.provider}`;
    this.gradientEngine = o.graphs.blackBox === undefined ? this.engine : 'none';
  }

  static async create(o: FamilyRunnerOptions): Promise<FamilyRunner> {
    const sessions: Sessions = {};
    for (const [name, bytes] of Object.entries(o.graphs.programs) as [NativeProgram, Uint8Array][]) {
      sessions[name] = await createSession(bytes, o.provider, `${o.id} (${name} program)`);
    }
    return new FamilyRunner(o, sessions);
  }

  get classifier() {
    return this.o.fallback?.classifier;
  }

  /** Which native programs this model has. */
  get programs(): NativeProgram[] {
    return Object.keys(this.sessions) as NativeProgram[];
  }

  /**
   * Runs a program on `rows` rows of batch-first feeds `[rows, width]`, given as [data, width]. A
   * program of a fixed batch size runs in chunks of it, the last one padded with zeros, whose rows
   * are dropped.
   */
  private async run(program: NativeProgram, rows: number, feeds: Record<string, [Float32Array, number]>): Promise<Outputs> {
    const session = this.sessions[program];
    if (!session) throw Errors.badModel(this.id, `no native '${program}' program`);
    const fixed = this.o.graphs.batch ?? undefined;
    const chunk = fixed ?? rows;
    const parts: Outputs[] = [];
    for (let from = 0; from < Math.max(rows, 1); from += Math.max(chunk, 1)) {
      const n = Math.min(chunk, rows - from);
      const tensors: Record<string, ort.Tensor> = {};
      for (const [name, [data, width]] of Object.entries(feeds)) {
        const slice = data.subarray(from * width, (from + n) * width);
        const padded = n === chunk ? slice : new Float32Array(chunk * width);
        if (padded !== slice) padded.set(slice);
        tensors[name] = floatTensor(padded, [chunk, width]);
      }
      throwIfStopping();
      let out: ort.InferenceSession.OnnxValueMapType;
      try {
        out = await session.run(tensors);
      } catch (e) {
        throw Errors.badModel(this.id, `onnxruntime could not run the ${program} program: ${(e as Error).message.split('\n')[0]}`);
      }
      const part: Outputs = {};
      for (const [name, t] of Object.entries(out)) {
        if (t.type !== 'float32') continue;
        const data = t.data as Float32Array;
        part[name] = n === chunk ? data : data.slice(0, (data.length / chunk) * n);
      }
      parts.push(part);
      if (rows === 0) break;
    }
    if (parts.length === 1) return parts[0]!;
    const all: Outputs = {};
    for (const name of Object.keys(parts[0]!)) {
      const joined = new Float32Array(parts.reduce((a, p) => a + p[name]!.length, 0));
      let at = 0;
      for (const p of parts) {
        joined.set(p[name]!, at);
        at += p[name]!.length;
      }
      all[name] = joined;
    }
    return all;
  }

  async scores(x: Tensor2D): Promise<Tensor2D> {
    const [b] = x.shape;
    const out = await this.run('scores', b, { x: [await floats(x), x.shape[1]] });
    return tf.tensor2d(outputOf(out, 'scores'), [b, this.numClasses]);
  }

  /** A program with a loss head (`ce`, `model`): value, scores and gradient in one run. */
  private async headed(program: 'ce' | 'model', x: Tensor2D, labels: Tensor1D, sign: 1 | -1): Promise<GradEvaluation> {
    const [b, d] = x.shape;
    const out = await this.run(program, b, {
      x: [await floats(x), d],
      onehot: [await oneHot(labels, this.numClasses), this.numClasses],
      sign: [new Float32Array(b).fill(sign), 1],
    });
    return {
      value: tf.tensor1d(outputOf(out, 'value')),
      scores: tf.tensor2d(outputOf(out, 'scores'), [b, this.numClasses]),
      grad: tf.tensor2d(outputOf(out, 'grad'), [b, d]),
    };
  }

  private refuse(what: string): never {
    throw Errors.attackUnsupported(
      what,
      this.id,
      `the ${this.family} family has no native program for it (its loss couples a batch's samples); use --engine auto or tfjs`,
    );
  }

  async gradient(objective: Objective, x: Tensor2D): Promise<GradEvaluation> {
    if (this.o.graphs.blackBox !== undefined) {
      throw Errors.attackUnsupported('a gradient attack', this.id, `it runs black-box (${this.o.graphs.blackBox}); black-box attacks: square`);
    }
    if (objective.kind === 'model') {
      if (this.sessions.model) return this.headed('model', x, objective.labels, objective.sign);
      if (this.o.fallback) return this.o.fallback.gradient(objective, x);
      return this.refuse('loss=model');
    }
    if (objective.ce && this.sessions.ce) return this.headed('ce', x, objective.ce.labels, objective.ce.sign);
    // Any other objective over the scores: its gradient in the scores (small, tfjs), pulled back
    // to the input by the vector–Jacobian program.
    const [b, d] = x.shape;
    const input = await floats(x);
    const scoresOut = await this.run('scores', b, { x: [input, d] });
    const scores = tf.tensor2d(outputOf(scoresOut, 'scores'), [b, this.numClasses]);
    const { value, grad: dscores } = tf.tidy(() => tf.valueAndGrad((s: Tensor2D) => objective.fn(s))(scores, tf.ones([b])));
    try {
      const out = await this.run('vjp', b, { x: [input, d], dscores: [await floats(dscores), this.numClasses] });
      return { value: value as Tensor1D, scores, grad: tf.tensor2d(outputOf(out, 'grad'), [b, d]) };
    } catch (e) {
      tf.dispose([value, scores]);
      throw e;
    } finally {
      dscores.dispose();
    }
  }

  async loss(name: LossName, x: Tensor2D, labels: Tensor1D): Promise<Tensor1D> {
    if (name === 'ce' || (this.o.graphs.ownLossIsCe && !this.sessions.model)) {
      const scores = await this.scores(x);
      const value = crossEntropyOfScores(scores, labels);
      scores.dispose();
      return value;
    }
    if (this.sessions.model) {
      const e = await this.headed('model', x, labels, 1);
      tf.dispose([e.scores, e.grad]);
      return e.value;
    }
    if (this.o.fallback) return this.o.fallback.loss(name, x, labels);
    return this.refuse('loss=model');
  }

  dispose(): void {
    for (const s of Object.values(this.sessions)) void s.release();
    this.o.fallback?.dispose();
  }
}
