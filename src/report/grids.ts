/**
 * Image grids: for sampled images, the clean image, the adversarial crafted on each source model
 * (one column per source) and the perturbation, with every model's prediction under each image.
 * Columns by source make the point of high-order models visible at a glance: their adversarials
 * have to look like the other digit.
 */
import { PNG } from 'pngjs';
import type { Location } from '../errors.js';
import { drawText, LINE_HEIGHT, textWidth } from './font.js';
import type { SampleLine } from './input.js';
import { decodePixels, imageShape, type ImageShape } from './pixels.js';

export interface GridAdversarial {
  pixels: Float32Array;
  /** Every model's prediction on this adversarial. */
  preds: Record<string, number>;
  success: boolean;
  linf: number;
  l2: number;
}

export interface GridRow {
  id: string;
  label: number;
  clean: Float32Array;
  cleanPreds: Record<string, number>;
  /** By source model; missing where the line has no pixels for that source. */
  adversarials: Record<string, GridAdversarial>;
}

export interface ImageGrid {
  attack: string;
  shape: ImageShape;
  /** Column order: the models whose adversarials the grid shows. */
  sources: string[];
  /** Every model with a prediction, in the order of the lines. */
  models: string[];
  rows: GridRow[];
}

interface DecodedLine {
  id: string;
  label: number;
  shape: ImageShape;
  clean: Float32Array;
  cleanPreds: Record<string, number>;
  /** attack → source → adversarial. */
  adversarials: Map<string, Map<string, GridAdversarial>>;
}

/**
 * Picks up to `perGrid` sample lines that carry pixels, preferring images that every model
 * classifies correctly (only those show what an attack does), and stops reading once it has them.
 * One grid per attack with adversarial pixels; images whose shape differs from the first one's are
 * left out with a warning.
 */
export async function collectGrids(samples: AsyncIterable<SampleLine>, perGrid: number, warnings: string[]): Promise<ImageGrid[]> {
  if (perGrid <= 0) return [];
  const preferred: DecodedLine[] = [];
  const others: DecodedLine[] = [];
  let seen = 0;
  let withPixels = 0;
  for await (const line of samples) {
    seen += 1;
    if (line.pixels === undefined || !line.adversarials.some((a) => a.adversarial !== undefined)) continue;
    withPixels += 1;
    const allRight = Object.values(line.clean).every((p) => p === line.label);
    if (!allRight && others.length >= perGrid) continue;
    const decoded = decodeLine(line);
    (allRight ? preferred : others).push(decoded);
    if (preferred.length >= perGrid) break;
  }
  if (seen > 0 && withPixels === 0) {
    warnings.push('the samples carry no pixels: no image grids (advstream eval writes them for its first --sample-pixels images; see docs/report.md)');
  }
  const chosen = [...preferred, ...others].slice(0, perGrid);
  if (chosen.length === 0) return [];
  const shape = chosen[0]!.shape;
  const same = chosen.filter((l) => l.shape.join() === shape.join());
  if (same.length < chosen.length) {
    warnings.push(`image grids leave out ${chosen.length - same.length} image(s) whose shape differs from [${shape.join(', ')}]`);
  }
  const attacks = [...new Set(same.flatMap((l) => [...l.adversarials.keys()]))];
  return attacks.map((attack) => {
    const rows = same.filter((l) => l.adversarials.has(attack));
    const sources = [...new Set(rows.flatMap((l) => [...l.adversarials.get(attack)!.keys()]))];
    const models = [...new Set(rows.flatMap((l) => Object.keys(l.cleanPreds)))];
    return {
      attack,
      shape,
      sources,
      models,
      rows: rows.map((l) => ({
        id: l.id,
        label: l.label,
        clean: l.clean,
        cleanPreds: l.cleanPreds,
        adversarials: Object.fromEntries(l.adversarials.get(attack)!),
      })),
    };
  });
}

function decodeLine(line: SampleLine): DecodedLine {
  const where: Location = { ...line.where, id: line.id };
  const clean = decodePixels(line.pixels, where, 'pixels');
  const shape = imageShape(clean.length, line.shape, where, 'pixels');
  const adversarials = new Map<string, Map<string, GridAdversarial>>();
  line.adversarials.forEach((a, i) => {
    if (a.adversarial === undefined) return;
    const field = `adversarials[${i}].adversarial`;
    const pixels = decodePixels(a.adversarial, where, field);
    imageShape(pixels.length, shape, where, field);
    const bySource = adversarials.get(a.attack) ?? new Map<string, GridAdversarial>();
    bySource.set(a.source, { pixels, preds: a.preds, success: a.success, linf: a.linf, l2: a.l2 });
    adversarials.set(a.attack, bySource);
  });
  return { id: line.id, label: line.label, shape, clean, cleanPreds: line.clean, adversarials };
}

/** An image in [0, 1] as RGBA bytes (grey or RGB). */
export function imageRgba(pixels: Float32Array, shape: ImageShape): Uint8Array {
  const [h, w, c] = shape;
  const out = new Uint8Array(h * w * 4);
  for (let i = 0; i < h * w; i++) {
    for (let k = 0; k < 3; k++) out[i * 4 + k] = Math.round(255 * clip01(pixels[i * c + (c === 1 ? 0 : k)]!));
    out[i * 4 + 3] = 255;
  }
  return out;
}

/**
 * The perturbation (adversarial − clean, averaged over channels) in diverging colours: red where a
 * pixel went up, blue where it went down, white where unchanged, scaled so that ±`scale` (the
 * largest change) is the full colour.
 */
export function perturbationRgba(adversarial: Float32Array, clean: Float32Array, shape: ImageShape): { rgba: Uint8Array; scale: number } {
  const [h, w, c] = shape;
  const delta = new Float32Array(h * w);
  let scale = 0;
  for (let i = 0; i < h * w; i++) {
    let d = 0;
    for (let k = 0; k < c; k++) d += adversarial[i * c + k]! - clean[i * c + k]!;
    delta[i] = d / c;
    scale = Math.max(scale, Math.abs(delta[i]!));
  }
  const out = new Uint8Array(h * w * 4);
  const neg = [33, 102, 172];
  const pos = [178, 24, 43];
  for (let i = 0; i < h * w; i++) {
    const t = scale > 0 ? delta[i]! / scale : 0;
    const end = t < 0 ? neg : pos;
    const a = Math.abs(t);
    for (let k = 0; k < 3; k++) out[i * 4 + k] = Math.round(255 + (end[k]! - 255) * a);
    out[i * 4 + 3] = 255;
  }
  return { rgba: out, scale };
}

export function encodePng(rgba: Uint8Array, width: number, height: number): Buffer {
  const png = new PNG({ width, height });
  png.data = Buffer.from(rgba.buffer, rgba.byteOffset, rgba.byteLength);
  return PNG.sync.write(png);
}

const INK: [number, number, number] = [34, 34, 34];
const GREY: [number, number, number] = [110, 110, 110];
const RIGHT: [number, number, number] = [26, 127, 55];
const WRONG: [number, number, number] = [207, 34, 46];

/** Pixels per image pixel, and per font pixel, in PNG grids. */
const IMAGE_SCALE = 4;
const TEXT_SCALE = 2;
const GAP = 16;

/**
 * The grid as one PNG, labelled in a bitmap font: title and legend, one column per source model
 * after the clean one, and per image a row of images with every model's prediction under each
 * (green right, red wrong; `*` marks the source itself) and a row of perturbations with their scale.
 */
export function gridPng(grid: ImageGrid): Buffer {
  const [h, w] = grid.shape;
  const line = LINE_HEIGHT * TEXT_SCALE;
  const imgW = w * IMAGE_SCALE;
  const imgH = h * IMAGE_SCALE;
  const predLine = (model: string, pred: number | undefined, source?: string) =>
    `${model}${model === source ? '*' : ''}: ${pred ?? '-'}`;
  const rowLabels = grid.rows.map((r) => [`#${r.id}`, `LABEL ${r.label}`]);
  const labelW = Math.max(textWidth('PERTURBATION', TEXT_SCALE), ...rowLabels.flat().map((t) => textWidth(t, TEXT_SCALE)));
  const headers = ['CLEAN', ...grid.sources.map((s) => `ON ${s}`)];
  const colTexts = headers.map((head, c) => {
    const source = c === 0 ? undefined : grid.sources[c - 1]!;
    const preds = grid.rows.flatMap((row) => {
      const p = source === undefined ? row.cleanPreds : row.adversarials[source]?.preds;
      return p ? grid.models.map((m) => predLine(m, p[m], source)) : [];
    });
    return [head, ...preds, 'L2 00.000 ±0.000'];
  });
  const colW = colTexts.map((texts) => Math.max(imgW, ...texts.map((t) => textWidth(t, TEXT_SCALE))));
  const title = `ATTACK ${grid.attack}`;
  const legend = [
    'COLUMNS: CLEAN, THEN THE ADVERSARIAL CRAFTED ON EACH MODEL',
    'UNDER EACH IMAGE: EVERY MODEL\'S PREDICTION, GREEN RIGHT, RED WRONG, * THE SOURCE',
    'PERTURBATION: ADVERSARIAL - CLEAN, RED UP, BLUE DOWN, FULL COLOUR AT ±SCALE',
  ];
  const gridW = GAP + labelW + GAP + colW.reduce((a, b) => a + b + GAP, 0);
  const width = Math.max(gridW, GAP * 2 + Math.max(...[title, ...legend].map((t) => textWidth(t, TEXT_SCALE))));
  const blockH = imgH + 4 + grid.models.length * line + GAP / 2 + imgH + 4 + line + GAP;
  const headerH = GAP + line * (2 + legend.length) + GAP / 2 + line + 4;
  const height = headerH + grid.rows.length * blockH + GAP;
  const rgba = new Uint8Array(width * height * 4).fill(255);
  const text = (x: number, y: number, t: string, colour = INK) => drawText(rgba, width, x, y, t, colour, TEXT_SCALE);
  const blit = (x: number, y: number, image: Uint8Array) => {
    for (let py = 0; py < imgH; py++) {
      for (let px = 0; px < imgW; px++) {
        const s = (Math.floor(py / IMAGE_SCALE) * w + Math.floor(px / IMAGE_SCALE)) * 4;
        const d = ((y + py) * width + x + px) * 4;
        rgba.set(image.subarray(s, s + 4), d);
      }
    }
  };
  let y = GAP;
  text(GAP, y, title);
  y += line * 2;
  for (const l of legend) {
    text(GAP, y, l, GREY);
    y += line;
  }
  y += GAP / 2;
  const colX: number[] = [];
  let x = GAP + labelW + GAP;
  headers.forEach((head, c) => {
    colX.push(x);
    text(x, y, head);
    x += colW[c]! + GAP;
  });
  y += line + 4;
  for (const [r, row] of grid.rows.entries()) {
    text(GAP, y, rowLabels[r]![0]!);
    text(GAP, y + line, rowLabels[r]![1]!, GREY);
    blit(colX[0]!, y, imageRgba(row.clean, grid.shape));
    grid.models.forEach((m, k) => {
      const p = row.cleanPreds[m];
      text(colX[0]!, y + imgH + 4 + k * line, predLine(m, p), p === row.label ? RIGHT : WRONG);
    });
    grid.sources.forEach((source, s) => {
      const adv = row.adversarials[source];
      if (!adv) return;
      const cx = colX[s + 1]!;
      blit(cx, y, imageRgba(adv.pixels, grid.shape));
      grid.models.forEach((m, k) => {
        const p = adv.preds[m];
        text(cx, y + imgH + 4 + k * line, predLine(m, p, source), p === row.label ? RIGHT : WRONG);
      });
      const py = y + imgH + 4 + grid.models.length * line + GAP / 2;
      const { rgba: delta, scale } = perturbationRgba(adv.pixels, row.clean, grid.shape);
      blit(cx, py, delta);
      text(cx, py + imgH + 4, `L2 ${adv.l2.toFixed(3)} ±${scale.toFixed(3)}`, GREY);
    });
    text(GAP, y + imgH + 4 + grid.models.length * line + GAP / 2, 'PERTURBATION', GREY);
    y += blockH;
  }
  return encodePng(rgba, width, height);
}

/** A file name for an attack id: `grid-fgsm_eps=0.1.png`. */
export function gridFileName(attack: string): string {
  return `grid-${attack.replace(/[^A-Za-z0-9._=-]+/g, '_')}.png`;
}

function clip01(v: number): number {
  return v < 0 ? 0 : v > 1 ? 1 : v;
}

