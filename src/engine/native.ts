/**
 * Models computed by ONNX Runtime, as {@link ModelRunner}s: the zoo's families from their exported
 * programs (scores and input gradients natively), and users' ONNX models (scores only: black-box).
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
import { modelInputDims, toModelInput, type OnnxInputSpec } from './onnx-file.js';
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

function outputOf(out: ort.InferenceSession.OnnxValueMapType, name: string): Float32Array {
  const t = out[name];
  if (!t || t.type !== 'float32') throw Errors.badModel(name, `the native program returned no float32 '${name}'`);
  return t.data as Float32Array;
}

export interface FamilyRunnerOptions {
  id: string;
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
 * A zoo family's model on ONNX Runtime: scores, the attacks' cross-entropy and the family's own
 * loss with their input gradients in one run each, and any other score objective through the
 * vector–Jacobian program.
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
    this.gradientEngine = this.engine;
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

  private async run(program: NativeProgram, feeds: Record<string, ort.Tensor>): Promise<ort.InferenceSession.OnnxValueMapType> {
    const session = this.sessions[program];
    if (!session) throw Errors.badModel(this.id, `no native '${program}' program`);
    throwIfStopping();
    return session.run(feeds);
  }

  async scores(x: Tensor2D): Promise<Tensor2D> {
    const [b, d] = x.shape;
    const out = await this.run('scores', { x: floatTensor(await floats(x), [b, d]) });
    return tf.tensor2d(outputOf(out, 'scores'), [b, this.numClasses]);
  }

  /** A program with a loss head (`ce`, `model`): value, scores and gradient in one run. */
  private async headed(program: 'ce' | 'model', x: Tensor2D, labels: Tensor1D, sign: 1 | -1): Promise<GradEvaluation> {
    const [b, d] = x.shape;
    const out = await this.run(program, {
      x: floatTensor(await floats(x), [b, d]),
      onehot: floatTensor(await oneHot(labels, this.numClasses), [b, this.numClasses]),
      sign: floatTensor(new Float32Array(b).fill(sign), [b, 1]),
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
    const scoresOut = await this.run('scores', { x: floatTensor(input, [b, d]) });
    const scores = tf.tensor2d(outputOf(scoresOut, 'scores'), [b, this.numClasses]);
    const { value, grad: dscores } = tf.tidy(() => tf.valueAndGrad((s: Tensor2D) => objective.fn(s))(scores, tf.ones([b])));
    try {
      const out = await this.run('vjp', { x: floatTensor(input, [b, d]), dscores: floatTensor(await floats(dscores), [b, this.numClasses]) });
      return { value: value as Tensor1D, scores, grad: tf.tensor2d(outputOf(out, 'grad'), [b, d]) };
    } catch (e) {
      tf.dispose([value, scores]);
      throw e;
    } finally {
      dscores.dispose();
    }
  }

  async loss(name: LossName, x: Tensor2D, labels: Tensor1D): Promise<Tensor1D> {
    if (name === 'ce') {
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

export interface UserRunnerOptions {
  id: string;
  bytes: Uint8Array;
  spec: OnnxInputSpec;
  provider: ProviderName;
}

/**
 * A user's ONNX model: scores only. Its graph is opaque (no backward pass can be derived from it
 * without a training runtime), so it is attacked black-box (Square), scored as a transfer target and
 * audited on its predictions; gradient attacks refuse it up front. Its losses are cross-entropy over
 * its outputs, as for user tfjs models.
 */
export class UserRunner implements ModelRunner {
  readonly family = 'onnx';
  readonly engine: string;
  readonly gradientEngine = 'none';
  readonly classifier = undefined;
  readonly id: string;
  readonly inputShape: readonly [number, number, number];

  private constructor(
    private readonly o: UserRunnerOptions,
    private readonly session: ort.InferenceSession,
    readonly numClasses: number,
  ) {
    this.id = o.id;
    this.inputShape = o.spec.shape;
    this.engine = `onnx-${o.provider}`;
  }

  static async create(o: UserRunnerOptions): Promise<UserRunner> {
    const session = await createSession(o.bytes, o.provider, o.id);
    // One probe image tells the number of classes when the graph's output dims are symbolic.
    const size = o.spec.shape[0] * o.spec.shape[1] * o.spec.shape[2];
    const probe = await UserRunner.runRaw(session, o.spec, new Float32Array(size), 1, o.id);
    return new UserRunner(o, session, probe.length);
  }

  /** Scores of `count` images, in chunks of the graph's fixed batch size when it has one. */
  private static async runRaw(session: ort.InferenceSession, spec: OnnxInputSpec, pixels: Float32Array, count: number, id: string): Promise<Float32Array> {
    const size = spec.shape[0] * spec.shape[1] * spec.shape[2];
    const chunk = spec.batch ?? Math.max(count, 1);
    const parts: Float32Array[] = [];
    for (let from = 0; from < Math.max(count, 1); from += chunk) {
      const n = Math.min(chunk, count - from);
      // A fixed-batch graph gets its last chunk padded with zeros; the padding's scores are dropped.
      const input = new Float32Array(chunk * size);
      input.set(toModelInput(pixels.subarray(from * size, (from + n) * size), n, spec));
      let out: ort.InferenceSession.OnnxValueMapType;
      throwIfStopping();
      try {
        out = await session.run({ [spec.input]: floatTensor(input, modelInputDims(chunk, spec)) });
      } catch (e) {
        throw Errors.badModel(id, `onnxruntime could not run the model: ${(e as Error).message.split('\n')[0]}`);
      }
      const scores = out[spec.output];
      if (!scores || scores.type !== 'float32') throw Errors.badModel(id, `output '${spec.output}' is not a float32 tensor`);
      const data = scores.data as Float32Array;
      if (data.length % chunk !== 0) throw Errors.badModel(id, `output '${spec.output}' [${scores.dims.join(', ')}] is not one row of scores per image`);
      parts.push(data.slice(0, n * (data.length / chunk)));
    }
    const all = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
    let at = 0;
    for (const p of parts) {
      all.set(p, at);
      at += p.length;
    }
    return all;
  }

  async scores(x: Tensor2D): Promise<Tensor2D> {
    const [b] = x.shape;
    const data = await UserRunner.runRaw(this.session, this.o.spec, await floats(x), b, this.id);
    return tf.tensor2d(data, [b, this.numClasses]);
  }

  gradient(): Promise<GradEvaluation> {
    return Promise.reject(Errors.attackUnsupported('a gradient attack', this.id, 'an ONNX model runs black-box: it offers no input gradients; black-box attacks: square'));
  }

  async loss(_name: LossName, x: Tensor2D, labels: Tensor1D): Promise<Tensor1D> {
    const scores = await this.scores(x);
    const value = crossEntropyOfScores(scores, labels);
    scores.dispose();
    return value;
  }

  dispose(): void {
    void this.session.release();
  }
}
