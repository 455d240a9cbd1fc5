/**
 * Attack parameters: each attack declares its parameters once (type, default, range, meaning), and
 * the same declaration validates spec strings, fills defaults and writes the canonical id.
 */
import { Errors } from '../errors.js';

export type ParamValue = number | boolean | string;
export type ResolvedParams = Readonly<Record<string, ParamValue>>;

/** A default, or a rule computing it from the other parameters (e.g. `step` from `eps`). */
type Default<T> = T | ((resolved: ResolvedParams) => T);

interface ParamBase<T> {
  readonly doc: string;
  readonly default: Default<T>;
  /**
   * Left out of the canonical id while at its default: an option added to an existing attack
   * (`eot`, `target`) keeps the ids, checkpoints and reports of every earlier spec valid.
   */
  readonly implicit?: boolean;
}
export interface NumberParam extends ParamBase<number> {
  readonly type: 'number';
  readonly min: number;
  readonly max: number;
  /** The minimum itself is out of range (ε > 0). */
  readonly exclusiveMin?: boolean;
}
export interface IntParam extends ParamBase<number> {
  readonly type: 'int';
  readonly min: number;
  readonly max: number;
}
export interface BoolParam extends ParamBase<boolean> {
  readonly type: 'bool';
}
export interface EnumParam<T extends string = string> extends ParamBase<T> {
  readonly type: 'enum';
  readonly values: readonly T[];
}
export interface StringParam extends ParamBase<string> {
  readonly type: 'string';
}
export type ParamSpec = NumberParam | IntParam | BoolParam | EnumParam | StringParam;
export type ParamSchema = Readonly<Record<string, ParamSpec>>;

/** The typed values of a schema: numbers, booleans and the enum's literal union. */
export type ParamValues<S extends ParamSchema> = {
  readonly [K in keyof S]: S[K] extends EnumParam<infer T>
    ? T
    : S[K] extends BoolParam
      ? boolean
      : S[K] extends StringParam
        ? string
        : number;
};

/** Numbers are kept to 12 significant digits, so that an id parses back to the very same attack. */
function roundNumber(v: number): number {
  return Number(v.toPrecision(12));
}

export function describeParam(key: string, p: ParamSpec): string {
  switch (p.type) {
    case 'number':
      return `${key} (number in ${p.exclusiveMin ? '(' : '['}${p.min}, ${p.max}])`;
    case 'int':
      return `${key} (integer in [${p.min}, ${p.max}])`;
    case 'bool':
      return `${key} (true|false)`;
    case 'enum':
      return `${key} (${p.values.join('|')})`;
    case 'string':
      return `${key} (name)`;
  }
}

function checkValue(spec: string, key: string, p: ParamSpec, value: ParamValue): ParamValue {
  const bad = (reason: string): never => {
    throw Errors.badSpec(spec, `${key}=${String(value)}: ${reason}`, [describeParam(key, p)]);
  };
  switch (p.type) {
    case 'number':
    case 'int': {
      if (typeof value !== 'number' || !Number.isFinite(value)) return bad('not a finite number');
      const v = p.type === 'int' ? value : roundNumber(value);
      if (p.type === 'int' && !Number.isInteger(v)) bad('not an integer');
      if (v < p.min || v > p.max || (p.type === 'number' && p.exclusiveMin === true && v === p.min)) bad('out of range');
      return v;
    }
    case 'bool':
      return typeof value === 'boolean' ? value : bad('not true or false');
    case 'enum':
      return typeof value === 'string' && (p.values as readonly string[]).includes(value) ? value : bad('not one of the values');
    case 'string':
      return typeof value === 'string' && value.length > 0 ? value : bad('empty');
  }
}

/** Reads one raw spec value (`0.3`, `8/255`, `true`, `linf`) as its declared type. */
export function parseRawValue(spec: string, key: string, p: ParamSpec, raw: string): ParamValue {
  switch (p.type) {
    case 'number':
    case 'int': {
      const frac = /^\s*([^/]+)\/([^/]+)\s*$/.exec(raw);
      const v = frac ? Number(frac[1]) / Number(frac[2]) : raw.trim() === '' ? Number.NaN : Number(raw);
      return checkValue(spec, key, p, v);
    }
    case 'bool':
      if (raw === 'true' || raw === '1') return true;
      if (raw === 'false' || raw === '0') return false;
      return checkValue(spec, key, p, raw);
    case 'enum':
    case 'string':
      return checkValue(spec, key, p, raw.trim().toLowerCase());
  }
}

/**
 * Every parameter of `schema`, from `given` where present and from the defaults otherwise, each
 * checked against its declared range. Computed defaults also see `context` (a wrapped attack's
 * parameters). `spec` only names the attack in errors.
 */
export function resolveParams<S extends ParamSchema>(
  spec: string,
  schema: S,
  given: Readonly<Record<string, ParamValue | undefined>>,
  context: ResolvedParams = {},
): ParamValues<S> {
  for (const key of Object.keys(given)) {
    if (given[key] !== undefined && !(key in schema)) {
      throw Errors.badSpec(spec, `unknown parameter '${key}'`, Object.entries(schema).map(([k, p]) => describeParam(k, p)));
    }
  }
  const out: Record<string, ParamValue> = {};
  for (const [key, p] of Object.entries(schema)) {
    const v = given[key];
    if (v !== undefined) out[key] = checkValue(spec, key, p, v);
    else if (typeof p.default !== 'function') out[key] = p.default;
  }
  for (const [key, p] of Object.entries(schema)) {
    if (key in out || typeof p.default !== 'function') continue;
    const v = p.default({ ...context, ...out });
    out[key] = typeof v === 'number' ? roundNumber(v) : v;
  }
  return out as ParamValues<S>;
}

/** `name:key=value,...` with every parameter, sorted by key: the id of an attack in every output. */
export function canonicalSpec(name: string, params: ResolvedParams): string {
  const keys = Object.keys(params).sort();
  return keys.length ? `${name}:${keys.map((k) => `${k}=${String(params[k])}`).join(',')}` : name;
}

/** Splits `name:key=value,...` into its name and raw key/value pairs; duplicate keys are errors. */
export function splitSpec(spec: string): { name: string; raw: Map<string, string> } {
  const trimmed = spec.trim();
  const colon = trimmed.indexOf(':');
  const name = (colon < 0 ? trimmed : trimmed.slice(0, colon)).trim().toLowerCase();
  const raw = new Map<string, string>();
  const body = colon < 0 ? '' : trimmed.slice(colon + 1).trim();
  if (body !== '') {
    for (const part of body.split(',')) {
      const eq = part.indexOf('=');
      if (eq < 0) throw Errors.badSpec(spec, `'${part.trim()}' is not key=value`);
      const key = part.slice(0, eq).trim().toLowerCase();
      if (raw.has(key)) throw Errors.badSpec(spec, `parameter '${key}' given twice`);
      raw.set(key, part.slice(eq + 1).trim());
    }
  }
  if (name === '') throw Errors.badSpec(spec, 'no attack name');
  return { name, raw };
}

/** The loss parameter shared by gradient attacks: cross-entropy, or the family's own loss (adaptive). */
export const LOSS_PARAM = {
  type: 'enum',
  values: ['ce', 'model'],
  default: 'ce',
  doc: 'loss to ascend: ce (cross-entropy over the scores) or model (the family\'s own training loss)',
} as const satisfies EnumParam<'ce' | 'model'>;

/**
 * Expectation over transformation (Athalye et al. 2018): each input gradient is the mean of `eot`
 * evaluations, for models or preprocessors that draw randomness on every call. 1 (the default) is a
 * plain gradient.
 */
export const EOT_PARAM = {
  type: 'int',
  min: 1,
  max: 1000,
  default: 1,
  implicit: true,
  doc: 'expectation over transformation: gradients averaged over this many evaluations (randomised models)',
} as const satisfies IntParam;

export const NORM_PARAM = {
  type: 'enum',
  values: ['linf', 'l2'],
  default: 'linf',
  doc: 'norm of the ε ball',
} as const satisfies EnumParam<'linf' | 'l2'>;

/**
 * The usual MNIST budgets: ε = 0.3 for L∞, ε = 2 for L2, ε = 10 for L1 (Tramèr & Boneh 2019), in
 * [0,1] pixel units; for L0, 10 changed pixels.
 */
export function defaultEpsilon(resolved: ResolvedParams): number {
  switch (resolved.norm) {
    case 'l2':
      return 2;
    case 'l1':
    case 'l0':
      return 10;
    default:
      return 0.3;
  }
}

/** ε: a fixed number, or by default {@link defaultEpsilon} of the `norm` parameter. */
export function epsilonParam(fallback: number | ((resolved: ResolvedParams) => number) = defaultEpsilon): NumberParam {
  return {
    type: 'number',
    min: 0,
    max: 1000,
    exclusiveMin: true,
    default: fallback,
    doc: 'perturbation budget in [0,1] pixel units, in the attack\'s norm',
  };
}

/** A resolved numeric parameter, for defaults computed from others. */
export function num(resolved: ResolvedParams, key: string): number {
  const v = resolved[key];
  if (typeof v !== 'number') throw new TypeError(`parameter '${key}' is not resolved to a number`);
  return v;
}

/** An attack's resolved parameters and its canonical id, from the options its constructor was given. */
export function configure<S extends ParamSchema>(
  name: string,
  schema: S,
  options: Readonly<Partial<Record<keyof S & string, ParamValue>>>,
): { params: ParamValues<S>; id: string } {
  const params = resolveParams(name, schema, options);
  return { params, id: canonicalSpec(name, idParams(schema, params)) };
}

/** The parameters that an id names: all but the {@link ParamBase.implicit} ones left at their default. */
export function idParams(schema: ParamSchema, params: ResolvedParams): ResolvedParams {
  return Object.fromEntries(
    Object.entries(params).filter(([key, v]) => {
      const p = schema[key];
      return !(p?.implicit === true && typeof p.default !== 'function' && p.default === v);
    }),
  );
}
