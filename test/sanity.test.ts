import { describe, expect, it } from 'vitest';
import { calibrationWarning, epsWarning, onnxSidecarWarning } from '../src/sanity.js';

describe('sanity warnings', () => {
  it('flags an ε above what the norm can use on [0,1] images, suggesting /255 for integers', () => {
    const w = epsWarning('pgd:eps=3', 'linf', 3, 784);
    expect(w?.code).toBe('EPS_ABOVE_RANGE');
    expect(w?.message).toMatch(/^pgd:eps=3: L∞ ε = 3 is above 1,.*did you mean eps=3\/255\?$/);
    expect(epsWarning('pgd:eps=1', 'linf', 1, 784)).toBeUndefined();
    expect(epsWarning('pgd:eps=0.3', 'linf', 0.3, 784)).toBeUndefined();
    expect(epsWarning('pgd:norm=l2,eps=10', 'l2', 10, 784)).toBeUndefined();
    expect(epsWarning('pgd:norm=l2,eps=30', 'l2', 30, 784)?.message).toContain('above 28');
    expect(epsWarning('pgd:norm=l2,eps=30', 'l2', 30, 784)?.message).not.toContain('/255');
  });

  it('flags an ONNX model without its normalisation sidecar', () => {
    const w = onnxSidecarWarning('models/torch-mlp.onnx', () => false);
    expect(w?.code).toBe('ONNX_NO_NORMALISATION');
    expect(w?.message).toContain('models/torch-mlp.onnx.json');
    expect(onnxSidecarWarning('models/torch-mlp.onnx', (f) => f === 'models/torch-mlp.onnx.json')).toBeUndefined();
    expect(onnxSidecarWarning('zoo:mlp-relu', () => false)).toBeUndefined();
  });

  it('flags a calibration on too few records for its false-positive rate', () => {
    const w = calibrationWarning(20, 0.01);
    expect(w?.code).toBe('CALIBRATION_SMALL');
    expect(w?.message).toMatch(/^calibrated on 20 clean records: .* rests on 0\.2 of them, .* at least 1000 records\.$/);
    expect(calibrationWarning(1000, 0.01)).toBeUndefined();
    expect(calibrationWarning(10_000, 0.001)).toBeUndefined();
    expect(calibrationWarning(5000, 0.001)?.message).toContain("at least 10000 records");
  });
});
