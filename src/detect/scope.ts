/**
 * The tensors of one detector's score. Model calls are asynchronous (ONNX Runtime's `session.run`),
 * and `tf.tidy` cannot span an `await`, so a detector cannot keep its tensors in one tidy the way a
 * synchronous scorer could. Instead every tensor it makes goes through a scope, and the caller
 * ({@link runDetectors}) disposes the scope after reading the result: nothing leaks, on success or
 * on a throw, whichever engine computed the scores.
 */
import { tf, type Tensor, type Tensor2D } from '../backend/index.js';
import type { ModelRunner } from '../models/runner.js';

export class TensorScope {
  private readonly owned = new Set<Tensor>();

  /** Takes ownership of every tensor in `value` (a tensor, an array or a record of them); returns it. */
  own<T extends tf.TensorContainer>(value: T): T {
    const walk = (v: tf.TensorContainer): void => {
      if (v instanceof tf.Tensor) this.owned.add(v);
      else if (Array.isArray(v)) v.forEach(walk);
      else if (v !== null && typeof v === 'object' && !ArrayBuffer.isView(v)) Object.values(v).forEach((u) => walk(u as tf.TensorContainer));
    };
    walk(value);
    return value;
  }

  /** Synchronous tfjs arithmetic between awaits: its intermediates freed at once, its results owned. */
  tidy<T extends tf.TensorContainer>(fn: () => T): T {
    return this.own(tf.tidy(fn));
  }

  /** A model's scores `[B, C]` on `x`, owned by the scope. */
  async scores(model: ModelRunner, x: Tensor2D): Promise<Tensor2D> {
    return this.own(await model.scores(x));
  }

  /** Frees tensors before the scope ends (a loop's per-step inputs), so that memory stays at one step. */
  drop(...tensors: Tensor[]): void {
    for (const t of tensors) {
      this.owned.delete(t);
      t.dispose();
    }
  }

  /** Frees every tensor still owned. */
  dispose(): void {
    tf.dispose([...this.owned]);
    this.owned.clear();
  }
}
