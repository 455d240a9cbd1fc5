/** Objectives are named values built in one place: the same name gives the same loss, and only `ce` carries the fused-CE tag. */
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend, tf, type Tensor1D, type Tensor2D } from '../../src/backend/index.js';
import { crossEntropy, dlrLoss, objective, targetedDlrLoss } from '../../src/attacks/losses.js';
import { isAdvstreamError } from '../../src/errors.js';

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
});

describe('objective', () => {
  it('builds each named loss, ascending the labels or descending the targets', async () => {
    const scores = tf.tensor2d([[2, 1, 0.5, -1], [0, 3, 1, 2]]) as Tensor2D;
    const labels = tf.tensor1d([0, 2], 'int32') as Tensor1D;
    const targets = tf.tensor1d([3, 0], 'int32') as Tensor1D;
    const value = async (o: ReturnType<typeof objective>) => (o.kind === 'scores' ? Array.from(await o.fn(scores).data()) : []);
    expect(await value(objective('ce', labels))).toEqual(Array.from(await crossEntropy(scores, labels).data()));
    expect(await value(objective('ce', labels, targets))).toEqual(Array.from(await tf.neg(crossEntropy(scores, targets)).data()));
    expect(await value(objective('dlr', labels))).toEqual(Array.from(await dlrLoss(scores, labels).data()));
    expect(await value(objective('dlr-targeted', labels, targets))).toEqual(Array.from(await targetedDlrLoss(scores, labels, targets).data()));
    expect(objective('ce', labels)).toMatchObject({ ce: { sign: 1 } });
    expect(objective('ce', labels, targets)).toMatchObject({ ce: { labels: targets, sign: -1 } });
    expect(objective('dlr', labels)).not.toHaveProperty('ce');
    expect(objective('model', labels, targets)).toMatchObject({ kind: 'model', labels: targets, sign: -1 });
    const e = (() => {
      try {
        return objective('dlr-targeted', labels);
      } catch (x) {
        return x;
      }
    })();
    expect(isAdvstreamError(e) && e.code).toBe('BAD_ARGUMENT');
    tf.dispose([scores, labels, targets]);
  });
});
