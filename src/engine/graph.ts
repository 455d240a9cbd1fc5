/**
 * A small ONNX graph builder over `onnx-proto` (protobufjs-generated ONNX definitions): names
 * values, adds nodes and float32 initializers, and encodes a model. Every exported graph of the
 * native engine is written with it; nothing encodes protobuf bytes by hand.
 */
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;

/** ONNX opset the graphs are written against: ReduceSum takes its axes as an input from 13 on. */
export const OPSET = 13;
const FLOAT = onnx.TensorProto.DataType.FLOAT;
const INT64 = onnx.TensorProto.DataType.INT64;

/** A dimension of a graph input or output: a fixed size or a named symbolic one (`batch`). */
export type Dim = number | string;

export type AttrValue = number | number[] | { float: number } | { string: string };

function attribute(name: string, value: AttrValue): onnxProto.onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if (Array.isArray(value)) return { name, type: T.INTS, ints: value };
  if (typeof value === 'number') return { name, type: T.INT, i: value };
  if ('string' in value) return { name, type: T.STRING, s: new TextEncoder().encode(value.string) };
  return { name, type: T.FLOAT, f: value.float };
}

/** Options of a {@link GraphBuilder}. */
export interface GraphOptions {
  /** The default-domain opset (default {@link OPSET}): a program derived from a user's graph keeps the graph's. */
  opset?: number;
  /** Prefixes every generated value name, so that generated names cannot meet those of nodes added raw. */
  prefix?: string;
  /** Opsets of other domains that nodes added raw use (`com.microsoft`, …). */
  domains?: readonly { domain: string; version: number }[];
}

function valueInfo(name: string, dims: readonly Dim[], elemType = FLOAT): onnxProto.onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType,
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

/** Little-endian bytes of a typed array, copied: the proto keeps them past the caller's buffer. */
function bytesOf(data: Float32Array | BigInt64Array): Uint8Array {
  return new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
}

/**
 * One graph under construction. Value names are unique: {@link op} returns the name of its output.
 *
 * @example
 *   const g = new GraphBuilder('affine');
 *   const x = g.input('x', ['batch', 3]);
 *   g.output(g.op('MatMul', [x, g.weight('w', [3, 2], new Float32Array(6))]), 'y', ['batch', 2]);
 *   const bytes = g.encode();
 */
export class GraphBuilder {
  private readonly nodes: onnxProto.onnx.INodeProto[] = [];
  private readonly initializers: onnxProto.onnx.ITensorProto[] = [];
  private readonly inputs: onnxProto.onnx.IValueInfoProto[] = [];
  private readonly outputs: onnxProto.onnx.IValueInfoProto[] = [];
  private readonly constants = new Map<string, string>();
  private counter = 0;
  readonly opset: number;
  private readonly prefix: string;
  private readonly domains: readonly { domain: string; version: number }[];

  constructor(
    readonly name: string,
    o: GraphOptions = {},
  ) {
    this.opset = o.opset ?? OPSET;
    this.prefix = o.prefix ?? '';
    this.domains = o.domains ?? [];
  }

  private fresh(hint: string): string {
    return `${this.prefix}${hint}_${this.counter++}`;
  }

  /** Adds a node as another graph holds it (its names unchanged). */
  raw(node: onnxProto.onnx.INodeProto): void {
    this.nodes.push(node);
  }

  /** Adds an initializer as another graph holds it. */
  rawInitializer(tensor: onnxProto.onnx.ITensorProto): void {
    this.initializers.push(tensor);
  }

  /** Declares an existing value a graph output under its own name; without dims, its type is left to the graph. */
  expose(value: string, dims?: readonly Dim[]): void {
    this.outputs.push(dims ? valueInfo(value, dims) : { name: value });
  }

  input(name: string, dims: readonly Dim[]): string {
    this.inputs.push(valueInfo(name, dims));
    return name;
  }

  /** Declares `value` a graph output named `name` (an Identity node renames it); without dims, its type is left to the graph. */
  output(value: string, name: string, dims?: readonly Dim[]): void {
    this.nodes.push({ opType: 'Identity', input: [value], output: [name], name: this.fresh('out') });
    this.outputs.push(dims ? valueInfo(name, dims) : { name });
  }

  /** A float32 initializer. */
  weight(name: string, dims: readonly number[], data: Float32Array): string {
    const expected = dims.reduce((a, b) => a * b, 1);
    if (data.length !== expected) throw new Error(`initializer ${name}: ${data.length} values for shape [${dims.join(', ')}]`);
    const unique = this.fresh(name);
    this.initializers.push({ name: unique, dims: [...dims], dataType: FLOAT, rawData: bytesOf(data) });
    return unique;
  }

  /** A float32 scalar constant, shared by every use of the same value. */
  scalar(value: number): string {
    const key = `f${value}`;
    let name = this.constants.get(key);
    if (!name) {
      name = this.weight('c', [], new Float32Array([value]));
      this.constants.set(key, name);
    }
    return name;
  }

  /** An int64 vector constant (shapes, axes). */
  ints(values: readonly number[]): string {
    const key = `i${values.join(',')}`;
    let name = this.constants.get(key);
    if (!name) {
      name = this.fresh('ints');
      const data = BigInt64Array.from(values.map((v) => BigInt(v)));
      this.initializers.push({ name, dims: [values.length], dataType: INT64, rawData: bytesOf(data) });
      this.constants.set(key, name);
    }
    return name;
  }

  /** Adds one node and returns the name of its (first) output. */
  op(type: string, inputs: readonly string[], attrs: Record<string, AttrValue> = {}): string {
    return this.opN(type, inputs, 1, attrs)[0]!;
  }

  /** Adds one node with `outputs` outputs. */
  opN(type: string, inputs: readonly string[], outputs: number, attrs: Record<string, AttrValue> = {}): string[] {
    const names = Array.from({ length: outputs }, () => this.fresh(type.toLowerCase()));
    this.nodes.push({
      opType: type,
      input: [...inputs],
      output: names,
      name: this.fresh(`n_${type}`),
      attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)),
    });
    return names;
  }

  /** The serialized `ModelProto`. */
  encode(): Uint8Array {
    const model = onnx.ModelProto.create({
      irVersion: onnx.Version.IR_VERSION,
      producerName: 'advstream',
      opsetImport: [{ domain: '', version: this.opset }, ...this.domains],
      graph: {
        name: this.name,
        node: this.nodes,
        initializer: this.initializers,
        input: this.inputs,
        output: this.outputs,
      },
    });
    return onnx.ModelProto.encode(model).finish();
  }
}

/** The graph inputs and outputs of an encoded model, with their dims (symbolic ones as strings). */
export interface GraphSignature {
  inputs: { name: string; dims: Dim[] }[];
  outputs: { name: string; dims: Dim[] }[];
}

/** Reads the declared inputs (initializers excluded) and outputs of an ONNX model's bytes. */
export function graphSignature(bytes: Uint8Array): GraphSignature {
  const model = onnx.ModelProto.decode(bytes);
  const graph = model.graph;
  if (!graph) throw new Error('the model has no graph');
  const inits = new Set((graph.initializer ?? []).map((t) => t.name));
  const dimsOf = (v: onnxProto.onnx.IValueInfoProto): Dim[] =>
    (v.type?.tensorType?.shape?.dim ?? []).map((d) => {
      if (d.dimParam) return d.dimParam;
      if (d.dimValue !== undefined && d.dimValue !== null) return Number(d.dimValue);
      return '?';
    });
  return {
    inputs: (graph.input ?? []).filter((v) => !inits.has(v.name ?? '')).map((v) => ({ name: v.name ?? '', dims: dimsOf(v) })),
    outputs: (graph.output ?? []).map((v) => ({ name: v.name ?? '', dims: dimsOf(v) })),
  };
}
