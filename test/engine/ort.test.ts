/** The provider cache: one choice per thread, which a failed older attempt cannot clear. */
import { describe, expect, it } from 'vitest';
import { selectProvider } from '../../src/engine/ort.js';

describe('selectProvider', () => {
  it('keeps the newer choice when an older attempt fails after it was replaced', async () => {
    const failing = selectProvider('no-such-provider');
    const chosen = selectProvider();
    await expect(failing).rejects.toMatchObject({ code: 'UNKNOWN_BACKEND' });
    await chosen;
    expect(selectProvider()).toBe(chosen);
  });
});
