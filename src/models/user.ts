/**
 * A user's own tfjs classifier (LayersModel or GraphModel, outputting logits) behind the same
 * {@link Classifier} interface as the zoo. Its only loss is cross-entropy over its outputs, so
 * `loss=model` means the same as `loss=ce`.
 */
import { tf, type Tensor2D } from '../backend/index.js';
import { Errors } from '../errors.js';
import type { ModelArtifact } from './artifact.js';
import type { Classifier } from './classifier.js';
import { crossEntropy } from './ops.js';

type Runner = (x: tf.Tensor) => tf.Tensor;

function shapeOf(dims: readonly (number | null)[], where: string): [number, number, number] {
  const rest = dims.slice(1);
  if (rest.some((d) => d === null || d === undefined)) throw Errors.badModel(where, `input shape ${JSON.stringify(dims)} has unknown dimensions`);
  const known = rest as number[];
  if (known.length === 1) {
    const side = Math.round(Math.sqrt(known[0]!));
    if (side * side !== known[0]) throw Errors.badModel(where, `flat input of ${known[0]} is not a square image`);
    return [side, side, 1];
  }
  if (known.length === 2) return [known[0]!, known[1]!, 1];
  if (known.length === 3) return [known[0]!, known[1]!, known[2]!];
  throw Errors.badModel(where, `unsupported input shape ${JSON.stringify(dims)}`);
}

export async function userClassifier(artifact: ModelArtifact): Promise<Classifier> {
  const json = artifact.modelJson as { format?: string; modelTopology: unknown; weightsManifest: { weights: tf.io.WeightsManifestEntry[] }[] };
  const handler = tf.io.fromMemory({
    modelTopology: json.modelTopology as tf.io.ModelJSON['modelTopology'],
    weightSpecs: json.weightsManifest.flatMap((g) => g.weights),
    weightData: artifact.weightData,
    format: json.format,
  });
  let run: Runner;
  let inputDims: readonly (number | null)[];
  let dispose: () => void;
  try {
    if (json.format === 'graph-model') {
      const g = await tf.loadGraphModel(handler);
      inputDims = g.inputs[0]!.shape ?? [];
      run = (x) => g.predict(x) as tf.Tensor;
      dispose = () => g.dispose();
    } else {
      const m = await tf.loadLayersModel(handler);
      inputDims = m.inputs[0]!.shape;
      run = (x) => m.apply(x, { training: false }) as tf.Tensor;
      dispose = () => m.dispose();
    }
  } catch (e) {
    throw Errors.badModel(artifact.id, `tfjs could not load the model: ${(e as Error).message}`);
  }
  const inputShape = shapeOf(inputDims, artifact.id);
  const flat = inputDims.length === 2;
  const scores = (x: Tensor2D): Tensor2D => {
    const input = flat ? x : tf.reshape(x, [x.shape[0], ...inputShape]);
    const out = run(input);
    return tf.reshape(out, [x.shape[0], -1]) as Tensor2D;
  };
  const probe = tf.tidy(() => scores(tf.zeros([1, inputShape[0] * inputShape[1] * inputShape[2]])));
  const numClasses = probe.shape[1];
  probe.dispose();
  return {
    id: artifact.id,
    family: json.format === 'graph-model' ? 'tfjs-graph' : 'tfjs-layers',
    inputShape,
    numClasses,
    scores,
    loss: (_name, x, labels) => crossEntropy(scores(x), labels),
    dispose,
  };
}
