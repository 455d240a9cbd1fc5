import { rm } from 'node:fs/promises';
import path from 'node:path';
import { filter, take } from 'rxjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend, tf, type Tensor2D } from '../../src/backend/index.js';
import { deriveSeed, parseAttackSpec } from '../../src/attacks/index.js';
import { fromRecords, openSource, toObservable, type ImageRecord, type RecordSource } from '../../src/data/index.js';
import { isAdvstreamError } from '../../src/errors.js';
import { buildClassifier, loadArtifact } from '../../src/models/artifact.js';
import type { Classifier } from '../../src/models/classifier.js';
import { maskingWarnings } from '../../src/report/masking.js';
import { EvalStats, type AdversarialResult, type SampleResult } from '../../src/stats/index.js';
import {
  evalCounters,
  evaluate,
  readCheckpoint,
  type BatchEvent,
  type EvalCounters,
  type EvalEvent,
  type EvaluateOptions,
  type FinalEvent,
} from '../../pipelines/index.js';
import { allEvents, finalOf, flakyEvalTasks, scratchDir, testModels } from './helpers.js';

// One threat model (L∞, ε = 0.1), so that the pointwise worst case over both is reported too.
const ATTACKS = ['fgsm:eps=0.1', 'pgd:eps=0.1,steps=5'];
const WORST = 'worst-case:eps=0.1,norm=linf';
const IMAGES = 64;
const BATCH = 16;
const SEED = 7;

let models: string[];
let reference: FinalEvent;

function options(extra: Partial<EvaluateOptions> = {}): EvaluateOptions {
  // tfjs: these runs are checked against a direct tfjs computation (the engines: engine.test.ts).
  return { models, attacks: ATTACKS, workers: 2, batch: BATCH, seed: SEED, backend: 'wasm', engine: 'tfjs', statsEvery: { batches: 1 }, ...extra };
}

const source = () => ({ uri: 'mnist:test', limit: IMAGES });

/** The statistics a final event shares with `EvalStats.summary()`. */
function statistics(e: FinalEvent) {
  return { images: e.images, models: e.models, transfer: e.transfer, curves: e.curves };
}

/** FNV-1a, as documented for pair seeds, written out again so that the test does not trust the code under test. */
function fnv(id: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** A million synthetic labelled images, as good as endless; `onRecord` is told of each one made. */
function* endless(onRecord: () => void = () => {}): Generator<ImageRecord> {
  const base = new Float32Array(784);
  for (let i = 0; i < 1_000_000; i++) {
    onRecord();
    base[i % 784] = (i % 255) / 255;
    yield { id: `synthetic/${i}`, label: i % 10, shape: [28, 28, 1], pixels: base.slice() };
  }
}

/** The first `n` batch events of a slow two-worker evaluation (batches of 4) of {@link endless}. */
function endlessBatches(counters: EvalCounters, n: number, onRecord?: () => void): Promise<EvalEvent[]> {
  return allEvents(
    evaluate(fromRecords(endless(onRecord)), {
      models: [models[1]!],
      attacks: ['fgsm:eps=0.1'],
      workers: 2,
      batch: 4,
      backend: 'wasm',
      counters,
      tasks: flakyEvalTasks({ delayMs: 50 }),
    }).pipe(
      filter((e) => e.type === 'batch'),
      take(n),
    ),
  );
}

/** A source of the caller's own that checks nothing: the pipeline must. */
function unchecked(records: () => AsyncGenerator<ImageRecord>): RecordSource {
  const source: RecordSource = {
    uri: 'unchecked',
    counters: { read: 0, rejected: 0, skipped: 0 },
    describe: () => ({ uri: 'unchecked', kind: 'records' }),
    toObservable: (o) => toObservable(source, o),
    [Symbol.asyncIterator]: records,
  };
  return source;
}

/** The evaluation done by hand, in this thread, one batch after another. */
async function directStatistics(records: ImageRecord[]): Promise<EvalStats> {
  await initBackend({ backend: 'wasm' });
  const classifiers: Classifier[] = [];
  for (const dir of models) classifiers.push(await buildClassifier(await loadArtifact(dir)));
  const attacks = ATTACKS.map((s) => parseAttackSpec(s));
  const stats = new EvalStats();
  for (let first = 0; first < records.length; first += BATCH) {
    const batch = records.slice(first, first + BATCH);
    const n = batch.length;
    const xData = new Float32Array(n * 784);
    batch.forEach((r, i) => xData.set(r.pixels, i * 784));
    const labels = Int32Array.from(batch, (r) => r.label!);
    const x = tf.tensor2d(xData, [n, 784]);
    const y = tf.tensor1d(labels, 'int32');
    const predict = async (m: Classifier, input: Tensor2D) => {
      const t = tf.tidy(() => tf.argMax(m.scores(input), 1));
      const out = Array.from(await t.data());
      t.dispose();
      return out;
    };
    const clean = await Promise.all(classifiers.map((m) => predict(m, x)));
    const entries: AdversarialResult[][] = batch.map(() => []);
    const batchSeed = deriveSeed(SEED, first);
    for (const attack of attacks) {
      for (const source of classifiers) {
        const res = await attack.run(source, x, y, { seed: deriveSeed(batchSeed, fnv(attack.id), fnv(source.id)) });
        const adv = tf.tensor2d(res.adversarial, [n, 784]);
        const preds = await Promise.all(classifiers.map((m) => predict(m, adv)));
        const confT = tf.tidy(() => tf.max(tf.softmax(source.scores(adv)), 1));
        const conf = await confT.data();
        tf.dispose([adv, confT]);
        for (let i = 0; i < n; i++) {
          entries[i]!.push({
            attack: attack.id,
            source: source.id,
            success: res.success[i] === 1,
            linf: res.linf[i]!,
            l2: res.l2[i]!,
            l1: res.l1[i]!,
            l0: res.l0[i]!,
            confidence: Math.min(1, Math.max(0, conf[i]!)),
            preds: Object.fromEntries(classifiers.map((m, t) => [m.id, preds[t]![i]!])),
          });
        }
      }
    }
    tf.dispose([x, y]);
    for (let i = 0; i < n; i++) {
      const label = labels[i]!;
      const worst = classifiers.map((source) => {
        const mine = entries[i]!.filter((e) => e.source === source.id);
        const chosen = mine.find((e) => e.preds[source.id] !== label) ?? mine.find((e) => e.success) ?? mine[0]!;
        return { ...chosen, attack: WORST, success: mine.some((e) => e.success) };
      });
      const sample: SampleResult = {
        label,
        clean: Object.fromEntries(classifiers.map((m, k) => [m.id, clean[k]![i]!])),
        adversarials: [...entries[i]!, ...worst],
      };
      stats.add(sample);
    }
  }
  for (const m of classifiers) m.dispose();
  return stats;
}

beforeAll(async () => {
  models = await testModels();
  const counters = evalCounters();
  const events = await allEvents(evaluate(source(), options({ counters })));
  reference = finalOf(events);
  // A leak-free task: each thread holds as many tensors after its last batch as after its first.
  expect(Object.keys(counters.tensors).length).toBeGreaterThan(0);
  for (const t of Object.values(counters.tensors)) expect(t.last).toBe(t.first);
});

describe('evaluate', () => {
  it('gives the statistics of a direct single-threaded computation on the same images', async () => {
    const all: ImageRecord[] = [];
    for await (const r of openSource('mnist:test', { limit: IMAGES })) all.push(r);
    const direct = (await directStatistics(all)).summary();
    expect(reference.images).toBe(IMAGES);
    expect(statistics(reference)).toEqual({ ...direct, curves: undefined });
    // The final line carries the masking checks of its own statistics.
    expect(reference.warnings).toEqual(maskingWarnings(reference));
    // Something was attacked: the test would catch attacks that do nothing.
    const m = reference.models[models[0]!]!;
    expect(m.attacks[WORST]!.robust_acc!).toBeLessThan(m.clean.acc!);
    expect(m.attacks[WORST]!.robust_acc!).toBeLessThanOrEqual(m.attacks[parseAttackSpec(ATTACKS[1]!).id]!.robust_acc!);
    expect(reference.backend).toBe('wasm');
    expect(reference.stop_reason).toBe('end');
    expect(reference.throughput.images).toBe(IMAGES);
    expect(reference.throughput.images_per_s).toBeGreaterThan(0);
    expect(reference.provenance).toMatchObject({ seed: SEED, batch: BATCH, attacks: ATTACKS.map((s) => parseAttackSpec(s).id) });
  });

  it('emits start, batches in source order, stats, then final', async () => {
    const events = await allEvents(evaluate(source(), options()));
    expect(events[0]!.type).toBe('start');
    const batches = events.filter((e): e is BatchEvent => e.type === 'batch');
    expect(batches.map((b) => b.index)).toEqual([0, 1, 2, 3]);
    expect(batches.flatMap((b) => b.ids)).toEqual(Array.from({ length: IMAGES }, (_, i) => `mnist:test/${i}`));
    expect(events.filter((e) => e.type === 'stats')).toHaveLength(4);
    expect(statistics(finalOf(events))).toEqual(statistics(reference));
  });

  it('carries the pixels of the first samplePixels images in their batch events, and only theirs', async () => {
    const events = await allEvents(evaluate(source(), options({ samplePixels: 20 })));
    const batches = events.filter((e): e is BatchEvent => e.type === 'batch');
    expect(batches.map((b) => b.pixels?.count ?? 0)).toEqual([16, 4, 0, 0]);
    const records: ImageRecord[] = [];
    for await (const r of openSource('mnist:test', { limit: 20 })) records.push(r);
    const pairs = ATTACKS.length * models.length;
    for (const b of batches.slice(0, 2)) {
      const px = b.pixels!;
      expect(px.shape).toEqual([28, 28, 1]);
      expect(px.adversarial.length).toBe(pairs * px.count * 784);
      for (let i = 0; i < px.count; i++) {
        expect(px.clean.subarray(i * 784, (i + 1) * 784)).toEqual(records[b.first + i]!.pixels);
        for (let p = 0; p < pairs; p++) {
          // The adversarial of pair p is the one the sample's p-th entry measured.
          const adv = px.adversarial.subarray((p * px.count + i) * 784, (p * px.count + i + 1) * 784);
          const linf = adv.reduce((m, v, j) => Math.max(m, Math.abs(v - px.clean[i * 784 + j]!)), 0);
          expect(linf).toBeCloseTo(b.samples[i]!.adversarials[p]!.linf, 5);
        }
      }
    }
    expect(statistics(finalOf(events))).toEqual(statistics(reference));
  });

  it('retries a batch whose worker crashed, losing and double-counting nothing', async () => {
    const counters = evalCounters();
    const events = await allEvents(
      evaluate(source(), options({ counters, tasks: flakyEvalTasks({ crashOnId: 'mnist:test/40', crashAttempts: 1 }) })),
    );
    expect(counters.retried).toBe(1);
    expect(statistics(finalOf(events))).toEqual(statistics(reference));
  });

  it('fails with WORKER_FAILED when the retries run out', async () => {
    const counters = evalCounters();
    const error = await allEvents(
      evaluate(source(), options({ counters, retries: 2, tasks: flakyEvalTasks({ crashOnId: 'mnist:test/20', crashAttempts: 99 }) })),
    ).catch((e: unknown) => e);
    expect(isAdvstreamError(error) && error.code).toBe('WORKER_FAILED');
    expect(counters.retried).toBe(2);
    expect(counters.poolOpen).toBe(false);
  });

  it('aborts the tasks in flight and closes the pool on unsubscribe', async () => {
    const counters = evalCounters();
    const seen: EvalEvent[] = [];
    const subscription = evaluate(source(), options({ counters, tasks: flakyEvalTasks({ delayMs: 3000 }) })).subscribe((e) => seen.push(e));
    const deadline = Date.now() + 60_000;
    while (counters.inFlight < 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(counters.inFlight).toBe(4);
    subscription.unsubscribe();
    expect(counters.aborted).toBe(4);
    await new Promise((r) => setTimeout(r, 200));
    expect(counters.poolOpen).toBe(false);
    expect(counters.completed).toBe(0);
    expect(seen.map((e) => e.type)).toEqual(['start']);
  });

  it('resumes a checkpoint to the statistics of an uninterrupted run', async () => {
    const dir = await scratchDir('checkpoint');
    const file = path.join(dir, 'eval.ckpt.json');
    try {
      // Stopped after the first committed batch: the one in flight finishes, a partial one is dropped.
      const stop = new AbortController();
      const first = await allEvents(
        evaluate(source(), options({ checkpoint: { file }, stop: stop.signal, maxInFlight: 1 })).pipe(
          filter((e) => {
            if (e.type === 'batch' && e.index === 0) stop.abort();
            return true;
          }),
        ),
      );
      const stopped = finalOf(first);
      expect(stopped.stop_reason).toBe('stopped');
      expect(stopped.images).toBeGreaterThan(0);
      expect(stopped.images).toBeLessThan(IMAGES);
      const saved = await readCheckpoint(file);
      expect(saved).toMatchObject({ complete: false, consumed: stopped.images, batches: stopped.images / BATCH });

      const second = await allEvents(evaluate(source(), options({ checkpoint: { file } })));
      expect(second[0]).toMatchObject({ type: 'start', resumed: { consumed: stopped.images } });
      const batches = second.filter((e): e is BatchEvent => e.type === 'batch');
      expect(batches[0]!.first).toBe(stopped.images);
      expect(statistics(finalOf(second))).toEqual(statistics(reference));
      expect((await readCheckpoint(file))?.complete).toBe(true);

      // A finished checkpoint answers at once, with no pool.
      const third = await allEvents(evaluate(source(), options({ checkpoint: { file } })));
      expect(third.map((e) => e.type)).toEqual(['start', 'final']);
      expect(statistics(finalOf(third))).toEqual(statistics(reference));

      const other = await allEvents(evaluate(source(), options({ checkpoint: { file }, attacks: ['fgsm:eps=0.2'] }))).catch(
        (e: unknown) => e,
      );
      expect(isAdvstreamError(other) && other.code).toBe('CHECKPOINT_MISMATCH');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('keeps pulled-but-unfinished records within (2·workers + 1)·batch on an endless source', async () => {
    const counters = evalCounters();
    const workers = 2;
    const batch = 4;
    let generated = 0;
    const batches = await endlessBatches(counters, 8, () => generated++);
    expect(batches).toHaveLength(8);
    expect(counters.maxOutstanding).toBeGreaterThan(0);
    expect(counters.maxOutstanding).toBeLessThanOrEqual((2 * workers + 1) * batch);
    expect(generated).toBeLessThanOrEqual((8 + 2 * (2 * workers)) * batch + 1);
    await new Promise((r) => setTimeout(r, 200));
    expect(counters.poolOpen).toBe(false);
  });

  it('skips unlabelled records under skip and fails on them under fail', async () => {
    const records = async function* (): AsyncGenerator<ImageRecord> {
      for await (const r of openSource('mnist:test', { limit: 20 })) {
        yield r.id === 'mnist:test/3' ? { id: r.id, shape: r.shape, pixels: r.pixels } : r;
      }
    };
    const rejected: string[] = [];
    const skipped = finalOf(
      await allEvents(
        evaluate(fromRecords(records()), {
          ...options({ attacks: ['fgsm:eps=0.1'], onBadRecord: 'skip', workers: 1 }),
          rejects: { write: (r) => void rejected.push(`${r.id}: ${r.code}`) },
        }),
      ),
    );
    expect(skipped.images).toBe(19);
    expect(skipped.progress.dropped).toBe(1);
    expect(rejected).toEqual(['mnist:test/3: BAD_RECORD']);
    const failed = await allEvents(evaluate(fromRecords(records()), options({ attacks: ['fgsm:eps=0.1'], workers: 1 }))).catch(
      (e: unknown) => e,
    );
    expect(isAdvstreamError(failed) && failed.code).toBe('BAD_RECORD');
  });

  it('rejects a record with a pixel outside [0, 1] through the reject policy, as the audit does', async () => {
    const records = async function* (): AsyncGenerator<ImageRecord> {
      for await (const r of openSource('mnist:test', { limit: 20 })) {
        if (r.id !== 'mnist:test/5') yield r;
        else {
          const pixels = r.pixels.slice();
          pixels[7] = 2;
          yield { ...r, pixels };
        }
      }
    };
    const rejected: string[] = [];
    const skipped = finalOf(
      await allEvents(
        evaluate(unchecked(records), {
          ...options({ attacks: ['fgsm:eps=0.1'], onBadRecord: 'skip', workers: 1 }),
          rejects: { write: (r) => void rejected.push(`${r.id}: ${r.code}: ${r.reason}`) },
        }),
      ),
    );
    expect(skipped.images).toBe(19);
    expect(skipped.progress.dropped).toBe(1);
    expect(rejected).toEqual(['mnist:test/5: BAD_RECORD: pixel 7 is 2, outside [0, 1]']);
  });

  it('fails through its checkpoint-on-error path when the reject sink fails', async () => {
    const dir = await scratchDir('rejects-fail');
    const file = path.join(dir, 'eval.ckpt.json');
    const counters = evalCounters();
    try {
      const records = async function* (): AsyncGenerator<ImageRecord> {
        for await (const r of openSource('mnist:test', { limit: 40 })) yield r.id === 'mnist:test/20' ? { id: r.id, shape: r.shape, pixels: r.pixels } : r;
      };
      const sinkDown = new Error('the rejects disk is full');
      const error = await allEvents(
        evaluate(fromRecords(records()), {
          ...options({ attacks: ['fgsm:eps=0.1'], onBadRecord: 'skip', workers: 1, checkpoint: { file }, counters }),
          rejects: { write: () => Promise.reject(sinkDown) },
        }),
      ).catch((e: unknown) => e);
      expect(error).toBe(sinkDown);
      // The committed prefix was saved, so a rerun resumes; and the pool is closed.
      expect(await readCheckpoint(file)).toMatchObject({ complete: false });
      await new Promise((r) => setTimeout(r, 200));
      expect(counters.poolOpen).toBe(false);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('keeps the in-flight bound with a counters object reused from an earlier run', async () => {
    const counters = evalCounters();
    const workers = 2;
    const batch = 4;
    await allEvents(evaluate({ uri: 'mnist:test', limit: 32 }, { models: [models[1]!], attacks: ['fgsm:eps=0.1'], workers, batch, backend: 'wasm', counters }));
    expect(counters.committed).toBe(8);
    const batches = await endlessBatches(counters, 4);
    expect(batches).toHaveLength(4);
    expect(counters.maxOutstanding).toBeLessThanOrEqual((2 * workers + 1) * batch);
  });

  it('runs the same task in the main thread, without a pool, to the same statistics', async () => {
    const counters = evalCounters();
    const events = await allEvents(evaluate(source(), options({ mainThread: true, counters })));
    expect(events[0]).toMatchObject({ type: 'start', mode: 'main-thread', workers: 1 });
    expect(counters.poolOpen).toBe(false);
    expect(statistics(finalOf(events))).toEqual(statistics(reference));
  });

  it('frees a main-thread run\'s models when it ends, and stops its running batch on unsubscribe', async () => {
    await initBackend({ backend: 'wasm' });
    const before = tf.memory().numTensors;
    await allEvents(evaluate(source(), options({ mainThread: true, attacks: ['fgsm:eps=0.1'] })));
    expect(tf.memory().numTensors).toBe(before);
    // A batch that would run for hours: unsubscribing stops it at its next model call, then frees the models.
    const counters = evalCounters();
    const subscription = evaluate(source(), options({ mainThread: true, counters, attacks: ['pgd:eps=0.1,steps=100000'] })).subscribe();
    while (counters.inFlight < 1) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 300));
    subscription.unsubscribe();
    const deadline = Date.now() + 60_000;
    while (tf.memory().numTensors !== before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(tf.memory().numTensors).toBe(before);
    expect(counters.completed).toBe(0);
  });

  it('stops reading once every interval is narrower than --until-ci', async () => {
    const widths: number[] = [];
    const events = await allEvents(
      evaluate({ uri: 'mnist:test', limit: 2000 }, { ...options({ attacks: ['fgsm:eps=0.1'], workers: 1 }), models: [models[1]!], untilCi: 0.2 }),
    );
    for (const e of events) if (e.type === 'stats') widths.push(e.max_ci_width);
    const final = finalOf(events);
    expect(final.stop_reason).toBe('until-ci');
    expect(final.max_ci_width).toBeLessThan(0.2);
    expect(widths[0]).toBeGreaterThanOrEqual(0.2);
    expect(final.images % BATCH).toBe(0);
    expect(final.images).toBeLessThan(400);
  });

  it('rejects bad specs before any model is read', async () => {
    const e = await allEvents(evaluate(source(), { models: ['/nonexistent'], attacks: ['nope:eps=1'] })).catch((x: unknown) => x);
    expect(isAdvstreamError(e) && e.code).toBe('BAD_SPEC');
  });
});
