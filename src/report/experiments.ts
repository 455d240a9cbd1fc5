/**
 * The five reproduction experiments (seeds-spec sections 1.7, 2.4, 3, 4.5, and the AutoAttack
 * check): which evaluations each needs and how each claim is judged on them. Paper figures are the
 * ones the spec transcribes; where the spec has a gap, the claim is qualitative and says so.
 */
import { accuracySpec, epsSpec, transferSpec } from './charts.js';
import {
  canonical,
  clearlyAbove,
  complement,
  judgeNumber,
  judgeQualitative,
  pct,
  points,
  show,
  type ClaimRow,
  type Estimate,
  type Experiment,
  type RunResults,
} from './reproduction.js';
import { MASKING_GAP, wellAbove } from './masking.js';
import { decimal, percent, type EpsPoint, type Table } from './tables.js';

/** Every model of the shipped zoo, in the order of `fixtures/zoo.json`'s families. */
export const ZOO_NAMES = [
  'softmax',
  'mlp-relu',
  'maxout',
  'maxout-adv',
  'drp',
  'dam-n2',
  'dam-n3',
  'dam-n20',
  'dam-n30',
  'iso-b0',
  'iso-b0.1',
] as const;

const zoo = (name: string) => `zoo:${name}`;
const label = (model: string) => model.replace(/^zoo:/, '');

// ---------------------------------------------------------------------------------------------
// 1. Goodfellow, Shlens & Szegedy 2015

const FGSM_PAPER = 'fgsm:eps=0.25,clip=false';
const FGSM_CLIPPED = 'fgsm:eps=0.25';
const SOFTMAX = zoo('softmax');
const MAXOUT = zoo('maxout');
const MAXOUT_ADV = zoo('maxout-adv');

const fgsmPaper: Experiment = {
  id: 'fgsm',
  title: 'FGSM and adversarial training (Goodfellow et al. 2015)',
  source:
    'Goodfellow, Shlens & Szegedy, "Explaining and Harnessing Adversarial Examples" (ICLR 2015): one signed-gradient step ' +
    'of ε = 0.25 fools shallow and deep MNIST models with high confidence, and FGSM adversarial training of a maxout network ' +
    'cuts that error and slightly improves clean error.',
  setup: [
    '`softmax` is softmax regression; `maxout` is a two-layer maxout MLP (240 units × 5 pieces, dropout, max-norm); ' +
      '`maxout-adv` is the same network trained on the FGSM objective (α = 0.5, ε = 0.25) for 20 epochs. The paper\'s ' +
      'adversarially trained maxout had 1,600 units per layer and early stopping on adversarial validation error.',
    'FGSM at ε = 0.25 on cross-entropy, unclipped as in the paper (`clip=false`: the ε ball only) and clipped to [0,1].',
    'Confidence: mean softmax probability of the predicted class over the misclassified adversarials.',
  ],
  runs: [{ id: 'fgsm', models: [SOFTMAX, MAXOUT, MAXOUT_ADV], attacks: [FGSM_PAPER, FGSM_CLIPPED] }],
  judge(r) {
    const err = (m: string, a = FGSM_PAPER) => r.error('fgsm', m, a);
    const conf = (m: string, a = FGSM_PAPER) => r.confidence('fgsm', m, a);
    const confident = (c: Estimate) => ({ holds: c.value > 0.5, text: c.value > 0.5 ? 'the mistakes are confident (mean above 50%)' : 'the mistakes are not confident (mean at most 50%)' });
    const fooled = (e: Estimate) => ({ holds: e.value > 0.5, text: e.value > 0.5 ? 'FGSM fools most images' : 'FGSM fools at most half of the images' });
    const plainErr = err(MAXOUT);
    const advErr = err(MAXOUT_ADV);
    const plainClean = complement(r.clean('fgsm', MAXOUT));
    const advClean = complement(r.clean('fgsm', MAXOUT_ADV));
    const toAdv = r.transfer('fgsm', FGSM_PAPER, [[MAXOUT, MAXOUT_ADV]]);
    const fromAdv = r.transfer('fgsm', FGSM_PAPER, [[MAXOUT_ADV, MAXOUT]]);
    const claims: ClaimRow[] = [
      judgeNumber({ claim: 'softmax regression: FGSM error', paper: 0.999, ours: err(SOFTMAX), tolerance: 0.02, stronger: 'higher', direction: fooled(err(SOFTMAX)) }),
      judgeNumber({ claim: 'softmax regression: confidence on mistakes', paper: 0.793, ours: conf(SOFTMAX), tolerance: 0.05, stronger: 'higher', direction: confident(conf(SOFTMAX)) }),
      judgeNumber({ claim: 'maxout: FGSM error', paper: 0.894, ours: plainErr, tolerance: 0.03, stronger: 'higher', direction: fooled(plainErr) }),
      judgeNumber({ claim: 'maxout: confidence on mistakes', paper: 0.976, ours: conf(MAXOUT), tolerance: 0.03, stronger: 'higher', direction: confident(conf(MAXOUT)) }),
      judgeNumber({
        claim: 'adversarially trained maxout: error on its own FGSM',
        paper: 0.179,
        ours: advErr,
        tolerance: 0.03,
        stronger: 'lower',
        direction: {
          holds: clearlyAbove(plainErr, advErr),
          text: clearlyAbove(plainErr, advErr)
            ? `adversarial training lowers the FGSM error (${show(advErr)} against ${show(plainErr)} for the plain maxout)`
            : `adversarial training does not clearly lower the FGSM error (plain maxout ${show(plainErr)})`,
        },
      }),
      judgeNumber({ claim: 'adversarially trained maxout: confidence on mistakes', paper: 0.814, ours: conf(MAXOUT_ADV), tolerance: 0.05, stronger: 'higher', direction: confident(conf(MAXOUT_ADV)) }),
      judgeNumber({
        claim: 'clean test error after adversarial training (0.94% before)',
        paper: 0.0084,
        ours: advClean,
        tolerance: 0.002,
        stronger: 'lower',
        direction: {
          holds: advClean.value <= plainClean.value,
          text: `the plain maxout's clean error is ${show(plainClean)}: adversarial training ${advClean.value <= plainClean.value ? 'does not raise' : 'raises'} it (${points(advClean.value - plainClean.value)})`,
        },
      }),
      judgeNumber({
        claim: 'transfer: plain maxout\'s adversarials on the adversarially trained maxout',
        paper: 0.196,
        ours: toAdv,
        tolerance: 0.03,
        stronger: 'lower',
        direction: {
          holds: clearlyAbove(plainErr, toAdv),
          text: `the adversarially trained model resists them ${clearlyAbove(plainErr, toAdv) ? 'far better' : 'no better'} than the plain model resists its own (${show(plainErr)})`,
        },
      }),
      judgeNumber({
        claim: 'transfer: adversarially trained maxout\'s adversarials on the plain maxout',
        paper: 0.409,
        ours: fromAdv,
        tolerance: 0.03,
        stronger: 'higher',
        direction: {
          holds: clearlyAbove(fromAdv, toAdv),
          text: `they transfer ${clearlyAbove(fromAdv, toAdv) ? 'more' : 'no more'} than the plain model's do the other way (${show(toAdv)})`,
        },
      }),
    ];
    const models = [SOFTMAX, MAXOUT, MAXOUT_ADV];
    const table: Table = {
      id: 'fgsm-clipping',
      caption: 'FGSM ε = 0.25: unclipped (the paper) and clipped to [0,1]',
      columns: ['model', 'clean error', 'error, unclipped', 'confidence, unclipped', 'error, clipped', 'confidence, clipped'],
      numeric: [false, true, true, true, true, true],
      rows: models.map((m) => [
        label(m),
        show(complement(r.clean('fgsm', m))),
        show(err(m)),
        percent(conf(m).value),
        show(err(m, FGSM_CLIPPED)),
        percent(conf(m, FGSM_CLIPPED).value),
      ]),
    };
    const shifts = models.map((m) => `${label(m)} ${points(err(m, FGSM_CLIPPED).value - err(m).value)}`).join(', ');
    return {
      claims,
      tables: [table],
      figures: [
        {
          name: 'fgsm-transfer',
          caption: 'FGSM ε = 0.25, unclipped: error of each model (columns) on the adversarials crafted on each model (rows)',
          spec: transferSpec('fgsm:eps=0.25,clip=false', r.run('fgsm').transfer[canonical(FGSM_PAPER)] ?? {}),
        },
      ],
      findings: [`Clipping the adversarials to [0,1] changes the FGSM error by: ${shifts}.`],
    };
  },
};

// ---------------------------------------------------------------------------------------------
// 2. Krotov & Hopfield 2018

const DAMS = ['dam-n2', 'dam-n3', 'dam-n20', 'dam-n30'].map(zoo);
const LOW = DAMS.slice(0, 2);
const HIGH = DAMS.slice(2);
const BOUNDARY = 'dam-boundary';
const DAM_PGD = ['pgd:eps=0.1,steps=40', 'pgd:eps=0.2,steps=40'];

function matrixTable(r: RunResults, run: string, attack: string, models: string[]): Table {
  return {
    id: `${run}-${attack}`,
    caption: `${attack}: error (%) of the model tested (columns) on the images generated by each model (rows)`,
    columns: ['generated by', ...models.map(label)],
    numeric: [false, ...models.map(() => true)],
    rows: models.map((source) => [label(source), ...models.map((target) => percent(r.transfer(run, attack, [[source, target]]).value))]),
  };
}

const pairs = (sources: string[], targets: string[]) => sources.flatMap((s) => targets.filter((t) => t !== s).map((t) => [s, t] as const));

const dam: Experiment = {
  id: 'dam',
  title: 'Dense Associative Memory transfer (Krotov & Hopfield 2018)',
  source:
    'Krotov & Hopfield, "Dense Associative Memory is Robust to Adversarial Inputs" (Neural Computation 2018): adversarial ' +
    'images made by DAMs of low power n (2, 3) transfer between themselves but mostly fail to fool DAMs of high power ' +
    '(20, 30), and high-n models need visibly larger deformations to be fooled.',
  setup: [
    '`dam-n2`, `dam-n3`, `dam-n20`, `dam-n30`: the zoo\'s DAMs (K = 200 memories, the authors\' training rule).',
    'The paper\'s boundary attack as seeds-spec 1.7 states it (the paper\'s exact rule and its table are not public): ' +
      'normalised steps of η = 0.005 (0.01 in DAM units) down the model\'s own loss toward the second-best class, ' +
      'stopping at the first crossing, at most 1,000 steps. Rows generate, columns are tested; the diagonal is the ' +
      'attack\'s own success.',
    'Added by us: the same matrix for PGD (L∞, 40 steps, cross-entropy, random start) at ε = 0.1 and 0.2.',
  ],
  runs: [{ id: 'dam', models: DAMS, attacks: [BOUNDARY, ...DAM_PGD] }],
  judge(r) {
    const claims: ClaimRow[] = [];
    const diag = DAMS.map((m) => r.transfer('dam', BOUNDARY, [[m, m]]));
    const lowest = Math.min(...diag.map((d) => d.value));
    claims.push(
      judgeQualitative('boundary attack: the diagonal (each model on its own images)', '≈100%', `lowest ${pct(lowest)}`, {
        holds: lowest >= 0.95,
        text: lowest >= 0.95 ? 'each model is fooled by the images it generated' : 'the attack fails to cross the boundary for some images within its step limit',
      }),
    );
    for (const attack of [BOUNDARY, ...DAM_PGD]) {
      const lowToHigh = r.transfer('dam', attack, pairs(LOW, HIGH));
      const lowToLow = r.transfer('dam', attack, pairs(LOW, LOW));
      const highToLow = r.transfer('dam', attack, pairs(HIGH, LOW));
      const extension = attack === BOUNDARY ? '' : ' (our extension)';
      claims.push(
        judgeQualitative(`${attack}${extension}: images from n = 2, 3 mostly do not fool n = 20, 30`, 'low (table not retrieved)', show(lowToHigh), {
          holds: lowToHigh.value < 0.5,
          text: lowToHigh.value < 0.5 ? `${show(lowToHigh)} error, pooled over the four cells` : `${show(lowToHigh)}: most of them do fool the high-n models`,
        }),
        judgeQualitative(`${attack}${extension}: they transfer between n = 2 and 3 more than to n = 20, 30`, 'pattern', show(lowToLow), {
          holds: clearlyAbove(lowToLow, lowToHigh),
          text: clearlyAbove(lowToLow, lowToHigh)
            ? `${show(lowToLow)} between n = 2 and 3 against ${show(lowToHigh)} to n = 20, 30`
            : `between n = 2 and 3 the error is ${show(lowToLow)}, not clearly above the ${show(lowToHigh)} to n = 20, 30; high-n images on low-n models: ${show(highToLow)}`,
        }),
      );
    }
    const l2 = DAMS.map((m) => r.meanL2('dam', m, BOUNDARY).value);
    const lowMax = Math.max(l2[0]!, l2[1]!);
    const highMin = Math.min(l2[2]!, l2[3]!);
    claims.push(
      judgeQualitative('boundary attack: high-n models need larger perturbations (mean L2)', 'larger (qualitative)', DAMS.map((m, i) => `${label(m)} ${decimal(l2[i]!)}`).join(', '), {
        holds: highMin > lowMax,
        weaker: highMin > lowMax && highMin / lowMax < 1.25,
        text:
          highMin > lowMax
            ? `n = 20, 30 need ${(highMin / lowMax).toFixed(2)}× or more the L2 of n = 2, 3${highMin / lowMax < 1.25 ? ', a small margin' : ''}`
            : 'the high-n models do not need larger perturbations',
      }),
    );
    const sizes: Table = {
      id: 'dam-sizes',
      caption: 'Perturbation each model needs: mean and median L2 (and mean L∞) of its successful adversarials, pixel units',
      columns: ['model', 'clean accuracy', 'boundary mean L2', 'boundary median L2', 'boundary mean L∞', ...DAM_PGD.map((a) => `${a} mean L2`)],
      numeric: [false, true, true, true, true, ...DAM_PGD.map(() => true)],
      rows: DAMS.map((m) => {
        const s = r.run('dam').models[m]!.attacks;
        const b = Object.entries(s).find(([k]) => k.startsWith('dam-boundary:'))![1];
        return [
          label(m),
          show(r.clean('dam', m)),
          decimal(b.mean_l2),
          decimal(b.median_l2),
          decimal(b.mean_linf),
          ...DAM_PGD.map((a) => decimal(r.meanL2('dam', m, a).value)),
        ];
      }),
    };
    const robust: Table = {
      id: 'dam-robust',
      caption: 'White-box robust accuracy under PGD-40 (cross-entropy)',
      columns: ['model', ...DAM_PGD],
      numeric: [false, ...DAM_PGD.map(() => true)],
      rows: DAMS.map((m) => [label(m), ...DAM_PGD.map((a) => show(r.robust('dam', m, a)))]),
    };
    const transfer = r.run('dam').transfer;
    return {
      claims,
      tables: [...[BOUNDARY, ...DAM_PGD].map((a) => matrixTable(r, 'dam', a, DAMS)), sizes, robust],
      figures: [BOUNDARY, ...DAM_PGD].map((a, i) => ({
        name: `dam-transfer-${['boundary', 'pgd-0.1', 'pgd-0.2'][i]}`,
        caption: `${a}: error of the model tested (columns) on the images each DAM generated (rows)`,
        spec: transferSpec(a, transfer[canonical(a)] ?? {}),
      })),
      findings: [
        `The other direction, for context: images from n = 20, 30 fool n = 2, 3 at ${show(r.transfer('dam', BOUNDARY, pairs(HIGH, LOW)))} ` +
          `(boundary attack), ${DAM_PGD.map((a) => `${show(r.transfer('dam', a, pairs(HIGH, LOW)))} (${a})`).join(', ')}.`,
        `White-box robust accuracy under PGD-40 at ε = 0.1: ${DAMS.map((m) => `${label(m)} ${percent(r.robust('dam', m, DAM_PGD[0]!).value)}`).join(', ')}. Section 5 checks high-n figures against AutoAttack for masked gradients.`,
      ],
    };
  },
};

// ---------------------------------------------------------------------------------------------
// 3. Serban, Poll & Visser 2021

const DRP = zoo('drp');
const MLP = zoo('mlp-relu');
const DRP_EPS = [0.1, 0.2, 0.3];
const drpPgd = (eps: number, loss?: 'model') => `pgd:eps=${eps},steps=40${loss ? ',loss=model' : ''}`;

const drp: Experiment = {
  id: 'drp',
  title: 'Deep Repulsive Prototypes (Serban et al. 2021)',
  source:
    'Serban, Poll & Visser, "Deep Repulsive Prototypes for Adversarial Robustness" (2021): training toward fixed, mutually ' +
    'repulsive class prototypes gives robustness without adversarial training (CIFAR-10: above 50% robust accuracy at ' +
    '92% clean), holding up better at large perturbations than adversarially trained models. The paper has no MNIST ' +
    'table; we test the claim\'s shape on MNIST.',
  setup: [
    '`drp`: the LeNet backbone trained toward frozen repulsive prototypes with the L∞ prototype loss, no adversarial training. ' +
      'Baselines at similar clean accuracy: `mlp-relu` (plain) and `maxout-adv` (FGSM adversarial training).',
    'PGD, L∞, 40 steps, random start, ε ∈ {0.1, 0.2, 0.3}. The DRP model is attacked both on cross-entropy over its scores ' +
      'and on its own prototype loss (`loss=model`, the adaptive attack of the paper); its figure is the worse of the two.',
  ],
  runs: [
    { id: 'drp', models: [DRP, MLP, MAXOUT_ADV], attacks: DRP_EPS.map((e) => drpPgd(e)) },
    { id: 'drp-model-loss', models: [DRP], attacks: DRP_EPS.map((e) => drpPgd(e, 'model')) },
  ],
  judge(r) {
    const worst = (eps: number): Estimate => {
      const ce = r.robust('drp', DRP, drpPgd(eps));
      const model = r.robust('drp-model-loss', DRP, drpPgd(eps, 'model'));
      return ce.value <= model.value ? ce : model;
    };
    const mlp = (eps: number) => r.robust('drp', MLP, drpPgd(eps));
    const adv = (eps: number) => r.robust('drp', MAXOUT_ADV, drpPgd(eps));
    const d01 = worst(0.1);
    const d03 = worst(0.3);
    const beatsPlain = clearlyAbove(d01, mlp(0.1));
    const claims: ClaimRow[] = [
      judgeQualitative('robust without adversarial training: DRP at ε = 0.1 (worse of the two losses)', '> 50% (CIFAR-10, ε = 8/255)', show(d01), {
        holds: beatsPlain,
        weaker: beatsPlain && d01.value < 0.5,
        text: beatsPlain
          ? `above the plain MLP's ${show(mlp(0.1))}${d01.value < 0.5 ? ', but under the paper\'s 50% bar' : ''}`
          : `not above the plain MLP's ${show(mlp(0.1))}`,
      }),
      ...[0.2, 0.3].map((eps) => {
        const d = worst(eps);
        const holds = clearlyAbove(d, adv(eps));
        return judgeQualitative(`holds up better than adversarial training at ε = ${eps}`, 'better at large ε', `${show(d)} vs ${show(adv(eps))}`, {
          holds,
          text: holds
            ? `DRP ${show(d)} against maxout-adv ${show(adv(eps))}`
            : `DRP ${show(d)} is not above the adversarially trained maxout's ${show(adv(eps))}`,
        });
      }),
    ];
    const series: [string, string, (eps: number) => Estimate][] = [
      ['drp (cross-entropy)', DRP, (eps) => r.robust('drp', DRP, drpPgd(eps))],
      ['drp (prototype loss)', DRP, (eps) => r.robust('drp-model-loss', DRP, drpPgd(eps, 'model'))],
      ['mlp-relu', MLP, mlp],
      ['maxout-adv', MAXOUT_ADV, adv],
    ];
    const eps: EpsPoint[] = series.flatMap(([model, , f]) =>
      DRP_EPS.map((e) => {
        const est = f(e);
        return { family: 'pgd', model, eps: e, robust_acc: est.value, ...(est.ci && { ci: est.ci }) };
      }),
    );
    const table: Table = {
      id: 'drp-robust',
      caption: 'Robust accuracy under PGD-40',
      columns: ['model', 'clean', ...DRP_EPS.map((e) => `ε = ${e}`)],
      numeric: [false, true, ...DRP_EPS.map(() => true)],
      rows: series.map(([name, model, f]) => [name, show(r.clean('drp', model)), ...DRP_EPS.map((e) => show(f(e)))]),
    };
    return {
      claims,
      tables: [table],
      figures: [{ name: 'drp-pgd', caption: 'Robust accuracy under PGD-40 against ε: DRP (both losses) and the baselines', spec: epsSpec('pgd:steps=40', eps) }],
      findings: [
        `At ε = 0.3 the DRP model keeps ${show(d03)} under the stronger of the two losses, the adversarially trained maxout ${show(adv(0.3))} and the plain MLP ${show(mlp(0.3))}.`,
      ],
    };
  },
};

// ---------------------------------------------------------------------------------------------
// 4. Beshkov, Verhellen & Lepperød 2022

/** logspace(−2, 0, 10), to four significant digits as the spec strings carry them. */
export const ISO_EPS = Array.from({ length: 10 }, (_, i) => Number((10 ** (-2 + (2 * i) / 9)).toPrecision(4)));
const ISO = zoo('iso-b0.1');
const ISO_BASE = zoo('iso-b0');
const isoFgsm = (eps: number, loss: 'ce' | 'model') => `fgsm:eps=${eps}${loss === 'model' ? ',loss=model' : ''}`;
/** The ε the claim covers: "about 0.05–0.3". */
const ISO_RANGE = ISO_EPS.filter((e) => e >= 0.05 && e <= 0.3);

const isometric: Experiment = {
  id: 'isometric',
  title: 'Isometric regularisation (Beshkov et al. 2022)',
  source:
    'Beshkov, Verhellen & Lepperød, "Isometric Representations in Neural Networks Improve Robustness" (2022): a network ' +
    'trained with a within-class isometry term (β > 0) keeps higher accuracy under FGSM than the cross-entropy baseline ' +
    '(β = 0) across ε, at about the same clean accuracy. The paper shows a curve without a table.',
  setup: [
    '`iso-b0.1` (β = 0.1) and `iso-b0` (β = 0): the authors\' tanh MLP, 12 epochs each (the authors\' 5 left β = 0 under its 97% target).',
    'FGSM, clipped to [0,1], over ε ∈ logspace(−2, 0, 10), attacking cross-entropy alone and the full training loss ' +
      '(`loss=model`: cross-entropy plus β·isometry, as the authors\' code does). Accuracy is over all 10,000 images.',
  ],
  runs: [{ id: 'isometric', models: [ISO, ISO_BASE], attacks: ISO_EPS.flatMap((e) => [isoFgsm(e, 'ce'), isoFgsm(e, 'model')]) }],
  judge(r) {
    const acc = (m: string, e: number, loss: 'ce' | 'model') => r.robust('isometric', m, isoFgsm(e, loss));
    const claims: ClaimRow[] = (['model', 'ce'] as const).map((loss) => {
      const gaps = ISO_RANGE.map((e) => acc(ISO, e, loss).value - acc(ISO_BASE, e, loss).value);
      const clear = ISO_RANGE.filter((e) => clearlyAbove(acc(ISO, e, loss), acc(ISO_BASE, e, loss))).length;
      const above = gaps.filter((g) => g > 0).length;
      return judgeQualitative(
        `β = 0.1 above β = 0 under FGSM for ε in 0.05–0.3, attacking ${loss === 'model' ? 'CE + β·iso (the paper\'s attack)' : 'CE alone'}`,
        'above (curve)',
        ISO_RANGE.map((e, i) => `ε ${e}: ${points(gaps[i]!)}`).join('; '),
        {
          holds: above === ISO_RANGE.length,
          weaker: above === ISO_RANGE.length && clear < ISO_RANGE.length,
          text:
            above === ISO_RANGE.length
              ? `above at all ${ISO_RANGE.length} grid points, with disjoint intervals at ${clear}`
              : `above at ${above} of ${ISO_RANGE.length} grid points`,
        },
      );
    });
    const cleanGap = r.clean('isometric', ISO).value - r.clean('isometric', ISO_BASE).value;
    claims.push(
      judgeQualitative('clean accuracy within about 1 point of the baseline', 'within ~1 pt', `${show(r.clean('isometric', ISO))} vs ${show(r.clean('isometric', ISO_BASE))}`, {
        holds: cleanGap >= -0.01,
        text: `β = 0.1 minus β = 0: ${points(cleanGap)}`,
      }),
    );
    const [withIso, ceOnly] = claims as [ClaimRow, ClaimRow];
    const findings =
      withIso.verdict !== 'not reproduced' && ceOnly.verdict === 'not reproduced'
        ? [
            'The advantage of β = 0.1 appears only when the attack ascends cross-entropy plus the isometry term. Attacked on ' +
              `cross-entropy alone the gaps are ${ceOnly.ours}: the isometry term in the attack loss weakens the attack on the ` +
              'β = 0.1 model; it does not make the model more robust to a cross-entropy attack.',
          ]
        : [];
    const series: EpsPoint[] = (['model', 'ce'] as const).flatMap((loss) =>
      [ISO, ISO_BASE].flatMap((m) =>
        ISO_EPS.map((e) => {
          const est = acc(m, e, loss);
          return { family: 'fgsm', model: `${label(m)} (${loss === 'model' ? 'CE + β·iso' : 'CE'})`, eps: e, robust_acc: est.value, ...(est.ci && { ci: est.ci }) };
        }),
      ),
    );
    const table: Table = {
      id: 'iso-fgsm',
      caption: 'Accuracy under FGSM over the paper\'s ε grid',
      columns: ['ε', ...(['model', 'ce'] as const).flatMap((loss) => [ISO, ISO_BASE].map((m) => `${label(m)}, ${loss === 'model' ? 'CE + β·iso' : 'CE'}`))],
      numeric: [true, true, true, true, true],
      rows: ISO_EPS.map((e) => [String(e), ...(['model', 'ce'] as const).flatMap((loss) => [ISO, ISO_BASE].map((m) => show(acc(m, e, loss))))]),
    };
    return {
      claims,
      tables: [table],
      figures: [{ name: 'iso-fgsm', caption: 'Accuracy under FGSM against ε (log scale), β = 0.1 and β = 0, both attack losses', spec: epsSpec('fgsm, logspace(−2, 0, 10)', series, { logEps: true }) }],
      findings,
    };
  },
};

// ---------------------------------------------------------------------------------------------
// 5. AutoAttack against PGD-40

const AA = 'autoattack:eps=0.3';
const PGD40 = 'pgd:eps=0.3,steps=40';

const autoattack: Experiment = {
  id: 'autoattack',
  title: 'AutoAttack check for gradient masking',
  source:
    'Croce & Hein (2020) showed that many defences look robust only because their gradients mislead PGD. We set every zoo ' +
    'model\'s PGD-40 robust accuracy beside AutoAttack\'s (APGD-CE, APGD-T, Square; no FAB-T) at ε = 0.3; a model whose ' +
    'PGD figure is much higher is flagged for gradient masking. DAM at high n, with its steep powers, is the likely case.',
  setup: [
    'Every model of the shipped zoo. `autoattack:eps=0.3`: APGD-CE (100 steps), APGD-T (9 targets × 100 steps) and ' +
      'Square (5,000 queries), each on the images still robust. `pgd:eps=0.3,steps=40`: PGD on cross-entropy, random start.',
    `Flag: PGD-40 above AutoAttack by more than ${points(MASKING_GAP).slice(1)} with disjoint 95% intervals.`,
  ],
  runs: [{ id: 'autoattack', models: ZOO_NAMES.map(zoo), attacks: [AA, PGD40] }],
  judge(r) {
    const rows = ZOO_NAMES.map((name) => {
      const m = zoo(name);
      const pgd = r.robust('autoattack', m, PGD40);
      const aa = r.robust('autoattack', m, AA);
      const flagged = wellAbove(pgd, aa);
      return { name, clean: r.clean('autoattack', m), pgd, aa, flagged };
    });
    const flagged = rows.filter((x) => x.flagged);
    const dams = rows.filter((x) => x.name === 'dam-n20' || x.name === 'dam-n30');
    const claims: ClaimRow[] = [
      judgeQualitative('PGD-40 overstates the robustness of high-n DAMs (gradient masking)', 'hypothesis (the issue)', dams.map((x) => `${x.name}: PGD ${percent(x.pgd.value)}, AA ${percent(x.aa.value)}`).join('; '), {
        holds: dams.some((x) => x.flagged),
        text: dams.some((x) => x.flagged) ? `flagged: ${dams.filter((x) => x.flagged).map((x) => x.name).join(', ')}` : 'neither high-n DAM is flagged: PGD-40 and AutoAttack agree',
      }),
      ...rows
        .filter((x) => !dams.includes(x))
        .map((x) =>
          judgeQualitative(`${x.name}: PGD-40 agrees with AutoAttack`, 'PGD-40 ≈ AutoAttack', `PGD ${show(x.pgd)}, AA ${show(x.aa)}`, {
            holds: !x.flagged,
            text: x.flagged ? `flagged: PGD-40 is ${points(x.pgd.value - x.aa.value)} above AutoAttack` : `gap ${points(x.pgd.value - x.aa.value)}`,
          }),
        ),
    ];
    const table: Table = {
      id: 'aa-table',
      caption: 'Robust accuracy at ε = 0.3: PGD-40 against AutoAttack',
      columns: ['model', 'clean', 'PGD-40', 'AutoAttack', 'PGD − AA', 'gradient masking'],
      numeric: [false, true, true, true, true, false],
      rows: rows.map((x) => [x.name, show(x.clean), show(x.pgd), show(x.aa), points(x.pgd.value - x.aa.value), x.flagged ? 'flagged' : '–']),
    };
    return {
      claims,
      tables: [table],
      figures: [{ name: 'autoattack', caption: 'Clean and robust accuracy of every zoo model: PGD-40, AutoAttack and their worst case, ε = 0.3', spec: accuracySpec(r.run('autoattack')) }],
      findings: [
        flagged.length === 0
          ? 'No model is flagged: PGD-40 is as strong as AutoAttack on every zoo model at ε = 0.3.'
          : `Flagged for gradient masking: ${flagged.map((x) => `${x.name} (PGD-40 ${percent(x.pgd.value)}, AutoAttack ${percent(x.aa.value)})`).join(', ')}. ` +
            'Their PGD-40 figures, and the white-box PGD results of the sections above for these models, overstate their robustness.',
        'An earlier version of this document (commit 4549baf) flagged dam-n20 (PGD-40 10.0%) and dam-n30 (47.6%) against ' +
          'AutoAttack\'s 0.0%. The gap came from the attack, not the models: tfjs-backend-wasm\'s `Sign` kernel returns 0 for ' +
          '|g| < 1.19e-7, and as PGD drives a high-n DAM\'s scores towards 0 its input gradients fall to 1e-8…1e-9, so more ' +
          'and more pixels stopped moving. The L∞ direction is now an exact sign on every backend. ' +
          (dams.some((x) => x.flagged)
            ? `With it, ${dams.filter((x) => x.flagged).map((x) => x.name).join(' and ')} remain flagged.`
            : `With it, PGD-40 gives ${dams.map((x) => `${x.name} ${percent(x.pgd.value)}`).join(' and ')}: no masking is left to flag.`),
      ],
    };
  },
};

/** Every experiment, in the document's order. */
export const EXPERIMENTS: readonly Experiment[] = [fgsmPaper, dam, drp, isometric, autoattack];
