/**
 * An ONNX graph as the differentiation reads it: nodes with their attributes decoded to plain
 * numbers, initializers kept as protos (they go back into every derived program unchanged).
 */
import onnxProto from 'onnx-proto';
import { Errors } from '../../errors.js';
import type { Dim } from '../graph.js';

const { onnx } = onnxProto;
type Long = { toNumber(): number };
type Attr = onnxProto.onnx.IAttributeProto;

export const DataType = onnx.TensorProto.DataType;

/** A protobuf int64 (a `Long` or a number) as a number. */
export function toNumber(v: number | Long | null | undefined): number {
  if (v === null || v === undefined) return 0;
  return typeof v === 'number' ? v : v.toNumber();
}

/** One node, with the attribute accessors its rule reads. */
export class IrNode {
  readonly op: string;
  readonly name: string;
  readonly inputs: string[];
  readonly outputs: string[];
  private readonly attrs: Map<string, Attr>;

  constructor(
    readonly proto: onnxProto.onnx.INodeProto,
    index: number,
  ) {
    this.op = proto.opType ?? '';
    this.name = proto.name || `#${index} (${this.op})`;
    this.inputs = [...(proto.input ?? [])];
    this.outputs = [...(proto.output ?? [])];
    this.attrs = new Map((proto.attribute ?? []).map((a) => [a.name ?? '', a]));
  }

  get domain(): string {
    return this.proto.domain ?? '';
  }

  has(name: string): boolean {
    return this.attrs.has(name);
  }

  int(name: string, fallback: number): number {
    const a = this.attrs.get(name);
    return a ? toNumber(a.i) : fallback;
  }

  ints(name: string, fallback: number[]): number[] {
    const a = this.attrs.get(name);
    return a ? (a.ints ?? []).map((v) => toNumber(v)) : fallback;
  }

  float(name: string, fallback: number): number {
    const a = this.attrs.get(name);
    return a ? (a.f ?? 0) : fallback;
  }

  string(name: string, fallback: string): string {
    const a = this.attrs.get(name);
    return a?.s ? new TextDecoder().decode(a.s) : fallback;
  }

  /** Whether the node carries a subgraph (If, Loop, Scan): those are not differentiated. */
  get hasSubgraph(): boolean {
    return [...this.attrs.values()].some((a) => a.g || (a.graphs && a.graphs.length > 0));
  }
}

/** A decoded model. */
export interface IrGraph {
  opset: number;
  nodes: IrNode[];
  initializers: onnxProto.onnx.ITensorProto[];
  inputs: { name: string; dims: Dim[]; elemType: number }[];
  outputs: string[];
}

/** Decodes model bytes; bytes that are not an ONNX model are a `BAD_MODEL` error naming `where`. */
export function decodeGraph(bytes: Uint8Array, where: string): IrGraph {
  let model: onnxProto.onnx.ModelProto;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (e) {
    throw Errors.badModel(where, `not an ONNX model: ${(e as Error).message}`);
  }
  const graph = model.graph;
  if (!graph) throw Errors.badModel(where, 'the model has no graph');
  const opset = toNumber((model.opsetImport ?? []).find((o) => !o.domain || o.domain === 'ai.onnx')?.version);
  const initializers = graph.initializer ?? [];
  const inits = new Set(initializers.map((t) => t.name));
  const dimsOf = (v: onnxProto.onnx.IValueInfoProto): Dim[] =>
    (v.type?.tensorType?.shape?.dim ?? []).map((d) => {
      if (d.dimParam) return d.dimParam;
      if (d.dimValue !== undefined && d.dimValue !== null) return toNumber(d.dimValue);
      return '?';
    });
  return {
    opset,
    nodes: (graph.node ?? []).map((n, i) => new IrNode(n, i)),
    initializers,
    inputs: (graph.input ?? [])
      .filter((v) => !inits.has(v.name ?? ''))
      .map((v) => ({ name: v.name ?? '', dims: dimsOf(v), elemType: v.type?.tensorType?.elemType ?? DataType.FLOAT })),
    outputs: (graph.output ?? []).map((v) => v.name ?? ''),
  };
}

/** The values of an int64 or int32 initializer, or undefined for another type. */
export function initializerInts(t: onnxProto.onnx.ITensorProto): number[] | undefined {
  if (t.dataType === DataType.INT64) {
    if (t.rawData && t.rawData.length > 0) {
      const raw = t.rawData;
      const view = new BigInt64Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
      return Array.from(view, (v) => Number(v));
    }
    return (t.int64Data ?? []).map((v) => toNumber(v));
  }
  if (t.dataType === DataType.INT32) {
    if (t.rawData && t.rawData.length > 0) {
      const raw = t.rawData;
      return Array.from(new Int32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength)));
    }
    return [...(t.int32Data ?? [])];
  }
  return undefined;
}
