/**
 * Reverse-mode differentiation of an ONNX inference graph, as ONNX: the forward nodes, then each
 * node's gradient rule (`rules.ts`) in reverse topological order, gradients summed where a value
 * fans out (residual connections). The result is a program ONNX Runtime runs like any other.
 *
 * Facts the rules need (dims, the values of Shape→Gather→Concat chains) come from two probe runs of
 * the forward graph with every intermediate value exposed, at batch 1 and 2: a dim that changes is
 * the batch's, an int value that does not is a constant and is folded into an initializer before
 * anything is differentiated. Reshape targets that name the batch size are rewritten with 0
 * ("copy this dim") so that the folded graph still runs at any batch size.
 */
import onnxProto from 'onnx-proto';
import { Errors } from '../../errors.js';
import { GraphBuilder, type Dim } from '../graph.js';
import { createSession, ort } from '../ort.js';
import { DataType, decodeGraph, initializerInts, IrNode, type IrGraph } from './ir.js';
import { RULES, type RuleContext, type ValueShape } from './rules.js';

/** The oldest opset whose graphs are differentiated: axes became inputs (Squeeze, ReduceSum) at 13. */
export const MIN_OPSET = 13;
const MAX_FOLDED = 4096;

/** float32 carries gradients; ints and booleans carry none (shapes, masks, indices); other floats cannot be followed. */
type Kind = 'float' | 'int' | 'discrete' | 'other';

interface Facts extends ValueShape {
  kind: Kind;
  /** An int value the same in both probes. */
  ints?: number[];
  /** Its element type, to fold it as the same type. */
  elemType?: number;
  /** An int value that differs between the probes: which entries grow with the batch, and the first probe's values. */
  batchInts?: boolean[];
  firstInts?: number[];
}

/** A node the differentiation cannot go through, named as the error names it. */
export interface UnsupportedNode {
  op: string;
  node: string;
  reason: string;
}

function kindOf(type: string): Kind {
  if (type === 'float32') return 'float';
  if (type === 'int64' || type === 'int32') return 'int';
  if (type === 'bool' || /^u?int\d+$/.test(type)) return 'discrete';
  return 'other';
}

function intsOf(t: ort.Tensor): number[] {
  return Array.from(t.data as ArrayLike<bigint | number>, (v) => Number(v));
}

/** Deterministic probe values in [0,1) (positive, so that a Log or Sqrt in the graph stays finite). */
function probeData(size: number): Float32Array {
  const out = new Float32Array(size);
  let s = 12345;
  for (let i = 0; i < size; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    out[i] = (s >>> 8) / 16777216;
  }
  return out;
}

function encodeWithOutputs(graph: IrGraph, outputs: string[]): Uint8Array {
  const g = new GraphBuilder('probe', { opset: graph.opset });
  for (const t of graph.initializers) g.rawInitializer(t);
  for (const i of graph.inputs) g.input(i.name, i.dims);
  for (const n of graph.nodes) g.raw(n.proto);
  for (const o of outputs) g.expose(o);
  return g.encode();
}

function intTensor(name: string, values: number[], elemType: number): onnxProto.onnx.ITensorProto {
  const data = elemType === DataType.INT32 ? Int32Array.from(values) : BigInt64Array.from(values.map((v) => BigInt(v)));
  return { name, dims: [values.length], dataType: elemType, rawData: new Uint8Array(data.buffer.slice(0)) };
}

/**
 * One forward graph ready to be differentiated: probed, folded, every node on a path from the
 * input to an output covered by a rule.
 *
 * @example
 *   const ad = await Autodiff.create(forwardBytes, 'model.onnx');
 *   const vjp = ad.program('vjp', (g, grad) => {
 *     const d = g.input('dscores', ['batch', 10]);
 *     g.expose('scores', ['batch', 10]);
 *     g.output(grad([['scores', d]]), 'grad', ['batch', 784]);
 *   });
 */
export class Autodiff {
  private constructor(
    private readonly graph: IrGraph,
    private readonly facts: Map<string, Facts>,
    private readonly dependent: Set<string>,
    readonly input: { name: string; dims: Dim[] },
    private readonly where: string,
  ) {}

  /**
   * Probes, folds and checks `bytes`, a model with one float input whose first dim may be
   * symbolic (the batch). A node on the differentiated path without a rule is a
   * `NOT_DIFFERENTIABLE` error that lists every such node (op type and name).
   */
  static async create(bytes: Uint8Array, where: string): Promise<Autodiff> {
    const graph = decodeGraph(bytes, where);
    if (graph.opset < MIN_OPSET) {
      throw Errors.notDifferentiable(where, `the graph is written against opset ${graph.opset}; input gradients need opset ${MIN_OPSET} or later (re-export with opset_version=${MIN_OPSET}+)`, []);
    }
    const floats = graph.inputs.filter((i) => i.elemType === DataType.FLOAT);
    if (floats.length !== 1 || graph.inputs.length !== 1) {
      throw Errors.notDifferentiable(where, `input gradients need one float input; the graph has ${graph.inputs.map((i) => i.name).join(', ')}`, []);
    }
    const input = floats[0]!;
    const facts = await probe(graph, input, where);
    const dependent = dependents(graph, input.name);
    const folded = fold(graph, facts, dependent);
    const ad = new Autodiff(folded, facts, dependents(folded, input.name), { name: input.name, dims: input.dims }, where);
    ad.check();
    return ad;
  }

  /** Whether `value` carries a gradient: it depends on the input and is float. */
  private carries(value: string): boolean {
    return value !== '' && this.dependent.has(value) && this.facts.get(value)?.kind === 'float';
  }

  /** Nodes between the input and the graph's outputs, in order, and those that lead off float32 on the way (float64, float16). */
  private paths(): { onPath: IrNode[]; offFloat: IrNode[] } {
    const reaches = new Set(this.graph.outputs);
    const onPath: IrNode[] = [];
    const offFloat: IrNode[] = [];
    for (let i = this.graph.nodes.length - 1; i >= 0; i--) {
      const n = this.graph.nodes[i]!;
      if (!n.outputs.some((o) => reaches.has(o))) continue;
      for (const v of n.inputs) reaches.add(v);
      if (!n.inputs.some((v) => this.carries(v))) continue;
      if (n.outputs.some((o) => this.carries(o))) onPath.unshift(n);
      else if (n.outputs.some((o) => this.facts.get(o)?.kind === 'other')) offFloat.unshift(n);
    }
    return { onPath, offFloat };
  }

  private onPath(): IrNode[] {
    return this.paths().onPath;
  }

  private check(): void {
    const { onPath, offFloat } = this.paths();
    const missing: UnsupportedNode[] = offFloat.map((n) => ({ op: n.op, node: n.name, reason: 'its output leaves float32, which carries the gradients' }));
    const g = new GraphBuilder('check', { opset: this.graph.opset, prefix: 'd/' });
    for (const n of onPath) {
      const rule = n.domain === '' || n.domain === 'ai.onnx' ? RULES[n.op] : undefined;
      if (!rule || n.hasSubgraph) {
        missing.push({ op: n.domain ? `${n.domain}.${n.op}` : n.op, node: n.name, reason: 'no gradient rule' });
        continue;
      }
      // A dry run of the rule: configurations it does not cover fail here, at load, not in a batch.
      try {
        rule(this.context(g, n), n.outputs.map((o) => (this.carries(o) ? 'dry' : undefined)));
      } catch (e) {
        if (!(e instanceof RuleFailure)) throw e;
        missing.push({ op: n.op, node: n.name, reason: e.message });
      }
    }
    if (missing.length > 0) {
      const list = missing.map((m) => `${m.op} (node '${m.node}'${m.reason === 'no gradient rule' ? '' : `: ${m.reason}`})`).join(', ');
      throw Errors.notDifferentiable(this.where, `no gradient rule for ${list}`, missing);
    }
  }

  private context(g: GraphBuilder, node: IrNode): RuleContext {
    const shapes = new Map<string, string>();
    const ctx: RuleContext = {
      node,
      g,
      opset: this.graph.opset,
      shape: (v) => {
        const found = this.facts.get(v);
        if (!found) throw new RuleFailure(`value '${v}' was not probed`);
        return found;
      },
      staticDims: (v, axes) => {
        const s = ctx.shape(v);
        for (const a of axes ?? s.dims.map((_, i) => i)) if (s.batch[a]) throw new RuleFailure(`axis ${a} of '${v}' grows with the batch`);
        return s.dims;
      },
      ints: (v) => {
        const found = this.facts.get(v)?.ints;
        if (!found) throw new RuleFailure(`input '${v}' is not a constant`);
        return found;
      },
      needs: (i) => this.carries(node.inputs[i] ?? ''),
      fail: (reason) => {
        throw new RuleFailure(reason);
      },
      shapeOf: (v) => {
        let s = shapes.get(v);
        if (!s) {
          s = g.op('Shape', [v]);
          shapes.set(v, s);
        }
        return s;
      },
      unbroadcast: (d, out, input) => {
        const o = ctx.shape(out);
        const i = ctx.shape(input);
        const lead = o.dims.length - i.dims.length;
        const axes: number[] = [];
        for (let a = 0; a < o.dims.length; a++) {
          const j = a - lead;
          const one = (s: ValueShape, k: number) => s.dims[k] === 1 && !s.batch[k];
          if (j < 0 || (one(i, j) && !one(o, a))) axes.push(a);
        }
        if (axes.length === 0) return d;
        return g.op('Reshape', [g.op('ReduceSum', [d, g.ints(axes)], { keepdims: 1 }), ctx.shapeOf(input)]);
      },
      zerosLike: (v) => g.op('Expand', [g.scalar(0), ctx.shapeOf(v)]),
    };
    return ctx;
  }

  /**
   * Writes the nodes of the gradient of Σ⟨seed value, seed gradient⟩ with respect to the input
   * into `g` (which holds the forward nodes) and returns its name.
   */
  private backward(g: GraphBuilder, seeds: readonly (readonly [string, string])[]): string {
    const grads = new Map<string, string>();
    const add = (v: string, d: string) => {
      const had = grads.get(v);
      grads.set(v, had ? g.op('Add', [had, d]) : d);
    };
    for (const [v, d] of seeds) add(v, d);
    const nodes = this.onPath();
    for (let i = nodes.length - 1; i >= 0; i--) {
      const n = nodes[i]!;
      const dys = n.outputs.map((o) => grads.get(o));
      if (dys.every((d) => d === undefined)) continue;
      const ctx = this.context(g, n);
      const dxs = RULES[n.op]!(ctx, dys);
      n.inputs.forEach((v, k) => {
        const d = dxs[k];
        if (d !== undefined && ctx.needs(k)) add(v, d);
      });
    }
    const dx = grads.get(this.input.name);
    return dx ?? g.op('Expand', [g.scalar(0), g.op('Shape', [this.input.name])]);
  }

  /**
   * A program: the forward graph (its input, its nodes; no outputs until `build` exposes them),
   * and whatever `build` adds, with `grad(seeds)` writing an input gradient.
   */
  program(name: string, build: (g: GraphBuilder, grad: (seeds: readonly (readonly [string, string])[]) => string) => void): Uint8Array {
    const g = new GraphBuilder(name, { opset: this.graph.opset, prefix: 'd/' });
    for (const t of this.graph.initializers) g.rawInitializer(t);
    g.input(this.input.name, this.input.dims);
    for (const n of this.graph.nodes) g.raw(n.proto);
    build(g, (seeds) => this.backward(g, seeds));
    return g.encode();
  }
}

/** A rule's refusal of one node's configuration. */
class RuleFailure extends Error {}

/** Values that depend on `input`. */
function dependents(graph: IrGraph, input: string): Set<string> {
  const out = new Set([input]);
  for (const n of graph.nodes) if (n.inputs.some((v) => out.has(v))) for (const o of n.outputs) out.add(o);
  return out;
}

async function runProbe(session: ort.InferenceSession, input: string, dims: number[]): Promise<ort.InferenceSession.OnnxValueMapType> {
  const size = dims.reduce((a, b) => a * b, 1);
  return session.run({ [input]: new ort.Tensor('float32', probeData(size), dims) });
}

/** Dims and int values of every value, from runs at batch 1 and 2 (once, for a fixed batch). */
async function probe(graph: IrGraph, input: IrGraph['inputs'][number], where: string): Promise<Map<string, Facts>> {
  const rest = input.dims.slice(1);
  if (rest.some((d) => typeof d !== 'number' || d <= 0)) throw Errors.badModel(where, `input '${input.name}' [${input.dims.join(', ')}]: only its first dim may be symbolic`);
  const fixed = typeof input.dims[0] === 'number' && input.dims[0] > 0 ? input.dims[0] : undefined;
  const facts = new Map<string, Facts>();
  for (const t of graph.initializers) {
    const ints = initializerInts(t);
    const dims = (t.dims ?? []).map((d) => Number(d));
    facts.set(t.name ?? '', {
      dims,
      batch: dims.map(() => false),
      kind: t.dataType === DataType.FLOAT ? 'float' : ints ? 'int' : 'other',
      ...(ints ? { ints, elemType: t.dataType ?? DataType.INT64 } : {}),
    });
  }
  const values = [...new Set(graph.nodes.flatMap((n) => n.outputs).filter((o) => o !== ''))];
  const session = await createSession(encodeWithOutputs(graph, values), 'cpu', `${where} (probe)`);
  try {
    const batches = fixed ? [fixed] : [1, 2];
    const runs: ort.InferenceSession.OnnxValueMapType[] = [];
    for (const b of batches) {
      try {
        runs.push(await runProbe(session, input.name, [b, ...(rest as number[])]));
      } catch (e) {
        throw Errors.badModel(where, `onnxruntime could not run the model at batch ${b}: ${(e as Error).message.split('\n')[0]}`);
      }
    }
    const inputDims = [batches[0]!, ...(rest as number[])];
    facts.set(input.name, { dims: inputDims, batch: inputDims.map((_, i) => i === 0 && !fixed), kind: 'float' });
    for (const v of values) {
      const [a, b] = [runs[0]![v], runs[1]?.[v]];
      if (!a) continue;
      const kind = kindOf(a.type);
      const dims = [...a.dims];
      const batch = dims.map((d, i) => b !== undefined && b.dims[i] !== d);
      const fact: Facts = { dims, batch, kind };
      if (kind === 'int' && a.size <= MAX_FOLDED) {
        const first = intsOf(a);
        const second = b ? intsOf(b) : first;
        if (first.length === second.length && first.every((x, i) => x === second[i])) {
          fact.ints = first;
          fact.elemType = a.type === 'int32' ? DataType.INT32 : DataType.INT64;
        } else if (b && first.length === second.length) {
          // A shape that names the batch size: remembered as such, for Reshape targets.
          fact.batchInts = first.map((x, i) => x !== second[i]);
          fact.firstInts = first;
        }
      }
      facts.set(v, fact);
    }
  } finally {
    await session.release();
  }
  return facts;
}

/**
 * The graph with its input-dependent int values that the probes found constant replaced by
 * initializers (Shape→Gather→Unsqueeze→Concat chains), Reshape targets that name the batch size
 * rewritten to copy it, and nodes nothing needs any more removed.
 */
function fold(graph: IrGraph, facts: Map<string, Facts>, dependent: Set<string>): IrGraph {
  const initializers = [...graph.initializers];
  const nodes: IrNode[] = [];
  let counter = 0;
  for (const n of graph.nodes) {
    const foldable =
      n.outputs.length > 0 &&
      n.outputs.every((o) => o !== '' && dependent.has(o) && facts.get(o)?.ints !== undefined) &&
      n.inputs.some((v) => dependent.has(v));
    if (foldable) {
      for (const o of n.outputs) {
        const fact = facts.get(o)!;
        initializers.push(intTensor(o, fact.ints!, fact.elemType ?? DataType.INT64));
      }
      continue;
    }
    if (n.op === 'Reshape' && n.inputs[1] && facts.get(n.inputs[1])?.batchInts) {
      const target = facts.get(n.inputs[1])!;
      const inShape = facts.get(n.inputs[0]!);
      const varying = target.batchInts!;
      const values = target.firstInts!.map((x, i) => {
        if (!varying[i]) return x;
        return inShape && inShape.batch[i] && inShape.dims[i] === x ? 0 : -1;
      });
      if (values.filter((x) => x === -1).length <= 1 && n.int('allowzero', 0) === 0) {
        const name = `fold/reshape_${counter++}`;
        initializers.push(intTensor(name, values, DataType.INT64));
        facts.set(name, { dims: [values.length], batch: [false], kind: 'int', ints: values, elemType: DataType.INT64 });
        const proto = { ...n.proto, input: [n.inputs[0]!, name] };
        nodes.push(new IrNode(proto, nodes.length));
        continue;
      }
    }
    nodes.push(n);
  }
  // Dead code: nodes whose outputs nothing reads any more.
  const needed = new Set(graph.outputs);
  const live: IrNode[] = [];
  for (let i = nodes.length - 1; i >= 0; i--) {
    const n = nodes[i]!;
    if (!n.outputs.some((o) => needed.has(o))) continue;
    for (const v of n.inputs) needed.add(v);
    live.unshift(n);
  }
  return { ...graph, nodes: live, initializers: initializers.filter((t) => needed.has(t.name ?? '')) };
}
