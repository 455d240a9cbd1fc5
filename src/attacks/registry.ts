/**
 * The attack registry: one registration list, keyed by the names that spec strings use
 * (`pgd:eps=0.3,steps=40`), shared by the CLI and the library.
 */
import { Errors } from '../errors.js';
import { ApgdCe, ApgdDlr, ApgdT, APGD_CE_PARAMS, APGD_PARAMS, APGD_T_PARAMS } from './apgd.js';
import { AutoAttack, AUTOATTACK_PARAMS } from './autoattack.js';
import type { Attack, AttackKind } from './base.js';
import { CW_PARAMS, L2CarliniWagner } from './carlini-wagner.js';
import { DAM_BOUNDARY_PARAMS, LinfDamBoundary } from './dam-boundary.js';
import { DeepFool, DEEPFOOL_PARAMS } from './deepfool.js';
import { Fab, FAB_PARAMS, FabT, FAB_T_PARAMS } from './fab.js';
import { FGM_PARAMS, FGSM_PARAMS, L2Fgm, LinfFgsm } from './fgsm.js';
import { HopSkipJump, HSJ_PARAMS } from './hop-skip-jump.js';
import { MIN_EPSILON_PARAMS, MinimalEpsilon } from './min-epsilon.js';
import {
  describeParam,
  parseRawValue,
  resolveParams,
  splitSpec,
  type ParamSchema,
  type ParamValue,
  type ParamValues,
  type ResolvedParams,
} from './params.js';
import { BIM_PARAMS, L1Slide, L2Pgd, LinfBim, LinfMiFgsm, LinfPgd, MIFGSM_PARAMS, PGD_PARAMS, SLIDE_PARAMS } from './pgd.js';
import { SparseRs, SPARSE_RS_PARAMS } from './sparse-rs.js';
import { SquareAttack, SQUARE_PARAMS } from './square.js';

/** One registered attack: its name, what it is, its parameters, and how to build it. */
export interface AttackEntry {
  readonly name: string;
  readonly kind: AttackKind;
  /** Paper, norm and purpose, one line. */
  readonly summary: string;
  readonly params: ParamSchema;
  /** Wraps another attack, named by its `attack` parameter, whose parameters sit beside its own. */
  readonly wraps?: boolean;
  create(params: ResolvedParams, inner?: Attack): Attack;
}

function entry<S extends ParamSchema>(e: {
  name: string;
  kind: AttackKind;
  summary: string;
  params: S;
  wraps?: boolean;
  create: (params: ParamValues<S>, inner?: Attack) => Attack;
}): AttackEntry {
  return { ...e, create: (params, inner) => e.create(params as ParamValues<S>, inner) };
}

/** Every attack, registered here and only here. */
export const ATTACKS: readonly AttackEntry[] = [
  entry({ name: 'fgsm', kind: 'fixed-epsilon', summary: 'FGSM, Goodfellow et al. 2015; L∞', params: FGSM_PARAMS, create: (p) => new LinfFgsm(p) }),
  entry({ name: 'fgm', kind: 'fixed-epsilon', summary: 'FGM, fast gradient method; L2', params: FGM_PARAMS, create: (p) => new L2Fgm(p) }),
  entry({ name: 'bim', kind: 'fixed-epsilon', summary: 'BIM / I-FGSM, Kurakin et al. 2016; L∞', params: BIM_PARAMS, create: (p) => new LinfBim(p) }),
  entry({
    name: 'pgd',
    kind: 'fixed-epsilon',
    summary: 'PGD with random start and restarts, Madry et al. 2018; L∞ or L2; targeted with target=random|next|least|k',
    params: PGD_PARAMS,
    create: ({ norm, ...p }) => (norm === 'l2' ? new L2Pgd(p) : new LinfPgd(p)),
  }),
  entry({ name: 'slide', kind: 'fixed-epsilon', summary: 'SLIDE, sparse L1 PGD, Tramèr & Boneh 2019; L1', params: SLIDE_PARAMS, create: (p) => new L1Slide(p) }),
  entry({ name: 'mifgsm', kind: 'fixed-epsilon', summary: 'MI-FGSM, Dong et al. 2018; L∞', params: MIFGSM_PARAMS, create: (p) => new LinfMiFgsm(p) }),
  entry({ name: 'apgd-ce', kind: 'fixed-epsilon', summary: 'APGD on cross-entropy, Croce & Hein 2020; L∞ or L2', params: APGD_CE_PARAMS, create: (p) => new ApgdCe(p) }),
  entry({ name: 'apgd-dlr', kind: 'fixed-epsilon', summary: 'APGD on the DLR loss, Croce & Hein 2020; L∞ or L2', params: APGD_PARAMS, create: (p) => new ApgdDlr(p) }),
  entry({ name: 'apgd-t', kind: 'fixed-epsilon', summary: 'APGD on the targeted DLR loss, top-k targets, Croce & Hein 2020; L∞ or L2', params: APGD_T_PARAMS, create: (p) => new ApgdT(p) }),
  entry({ name: 'square', kind: 'fixed-epsilon', summary: 'Square attack, score-based black box, Andriushchenko et al. 2020; L∞ or L2', params: SQUARE_PARAMS, create: (p) => new SquareAttack(p) }),
  entry({
    name: 'sparse-rs',
    kind: 'fixed-epsilon',
    summary: 'Sparse-RS, score-based black box, Croce et al. 2022; L0 (ε changed pixels)',
    params: SPARSE_RS_PARAMS,
    create: (p) => new SparseRs(p),
  }),
  entry({ name: 'cw', kind: 'minimization', summary: 'Carlini–Wagner, Carlini & Wagner 2017; L2', params: CW_PARAMS, create: (p) => new L2CarliniWagner(p) }),
  entry({ name: 'deepfool', kind: 'minimization', summary: 'DeepFool, Moosavi-Dezfooli et al. 2016; L2 or L∞', params: DEEPFOOL_PARAMS, create: (p) => new DeepFool(p) }),
  entry({ name: 'fab', kind: 'minimization', summary: 'FAB, fast adaptive boundary, Croce & Hein 2020; minimum-norm L∞, L2 or L1', params: FAB_PARAMS, create: (p) => new Fab(p) }),
  entry({
    name: 'fab-t',
    kind: 'minimization',
    summary: 'FAB-T, targeted FAB over the top-k classes (AutoAttack), Croce & Hein 2020; minimum-norm L∞, L2 or L1',
    params: FAB_T_PARAMS,
    create: (p) => new FabT(p),
  }),
  entry({
    name: 'dam-boundary',
    kind: 'minimization',
    summary: 'DAM boundary attack, Krotov & Hopfield 2018 (seeds-spec 1.7); L∞ steps',
    params: DAM_BOUNDARY_PARAMS,
    create: (p) => new LinfDamBoundary(p),
  }),
  entry({
    name: 'hsj',
    kind: 'minimization',
    summary: 'HopSkipJump, decision-based (labels only), Chen, Jordan & Wainwright 2020; minimum-norm L2 or L∞',
    params: HSJ_PARAMS,
    create: (p) => new HopSkipJump(p),
  }),
  entry({
    name: 'mineps',
    kind: 'minimization',
    summary: 'minimal ε per sample: bisection over a fixed-ε attack, or a minimization attack\'s norm',
    params: MIN_EPSILON_PARAMS,
    wraps: true,
    create: ({ attack: _attack, ...p }, inner) => {
      if (!inner) throw new TypeError('mineps needs the attack it wraps');
      return new MinimalEpsilon(inner, p);
    },
  }),
  entry({ name: 'autoattack', kind: 'fixed-epsilon', summary: 'AutoAttack, Croce & Hein 2020: version=standard (APGD-CE, APGD-T, FAB-T, Square), rand (APGD-CE, APGD-DLR with EOT), fast (default: standard without FAB-T); L∞ or L2', params: AUTOATTACK_PARAMS, create: (p) => new AutoAttack(p) }),
];

const BY_NAME = new Map(ATTACKS.map((e) => [e.name, e]));

/** The registered names, in registration order: `['fgsm', 'fgm', 'bim', 'pgd', ...]`. */
export function attackNames(): string[] {
  return ATTACKS.map((e) => e.name);
}

/** A registered attack's entry (its parameters with types, defaults and ranges), for help texts. */
export function getAttackEntry(name: string): AttackEntry | undefined {
  return BY_NAME.get(name);
}

function readValues(spec: string, schema: ParamSchema, raw: ReadonlyMap<string, string>): Record<string, ParamValue> {
  const values: Record<string, ParamValue> = {};
  for (const [key, value] of raw) {
    const p = schema[key];
    if (p) values[key] = parseRawValue(spec, key, p, value);
  }
  return values;
}

function unknownKeys(spec: string, raw: ReadonlyMap<string, string>, schemas: readonly ParamSchema[]): void {
  for (const key of raw.keys()) {
    if (schemas.some((s) => key in s)) continue;
    const valid = schemas.flatMap((s) => Object.entries(s).map(([k, p]) => describeParam(k, p)));
    throw Errors.badSpec(spec, `unknown parameter '${key}'`, [...new Set(valid)].sort());
  }
}

/**
 * An attack from its spec: `name[:key=value,...]`. Unknown names and keys and out-of-range values
 * are `BAD_SPEC` errors that list the valid ones; the attack's `id` is the canonical spec (every
 * parameter, sorted, defaults filled). Numbers may be written as fractions (`eps=8/255`).
 *
 * @example
 *   parseAttackSpec('pgd:eps=0.3,steps=40,step=0.01').id;
 *   // 'pgd:eps=0.3,loss=ce,norm=linf,random=true,restarts=1,step=0.01,steps=40'
 */
export function parseAttackSpec(spec: string): Attack {
  const { name, raw } = splitSpec(spec);
  const found = BY_NAME.get(name);
  if (!found) throw Errors.badSpec(spec, `unknown attack '${name}'`, attackNames());
  if (!found.wraps) {
    unknownKeys(spec, raw, [found.params]);
    return found.create(resolveParams(spec, found.params, readValues(spec, found.params, raw)));
  }
  const wrappable = ATTACKS.filter((e) => !e.wraps).map((e) => e.name);
  const fallback = found.params.attack?.default;
  const innerName = (raw.get('attack') ?? (typeof fallback === 'string' ? fallback : '')).toLowerCase();
  const inner = BY_NAME.get(innerName);
  if (!inner || inner.wraps) throw Errors.badSpec(spec, `${found.name} cannot wrap '${innerName}'`, wrappable);
  unknownKeys(spec, raw, [found.params, inner.params]);
  const innerRaw = [...raw].filter(([key]) => !(key in found.params));
  const innerAttack = parseAttackSpec(`${inner.name}:${innerRaw.map(([k, v]) => `${k}=${v}`).join(',')}`);
  const own = resolveParams(spec, found.params, readValues(spec, found.params, raw), { distance: innerAttack.distance.name });
  return found.create(own, innerAttack);
}
