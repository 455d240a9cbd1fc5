/**
 * Fixed-ε attacks of one family run at several budgets (`fgsm:eps=0.1`, `fgsm:eps=0.2`, …) make a
 * robust-accuracy-versus-ε curve: attack ids that agree on everything but `eps` form one family.
 */

export interface EpsMember {
  attack: string;
  eps: number;
}

/**
 * Family key (the id with `eps` removed) → its attacks, by increasing ε. A canonical id fills in
 * defaults, and iterative attacks default their step size to a multiple of ε (`pgd:eps=0.1,steps=5`
 * is `…,step=0.05,…`, `pgd:eps=0.2,steps=5` is `…,step=0.1,…`): attacks whose `step` is the same
 * multiple of ε form one family too, keyed `step=0.5·ε`.
 */
export function epsFamilies(attackIds: Iterable<string>): Map<string, EpsMember[]> {
  const members = [...attackIds].flatMap((attack) => {
    const split = splitEps(attack);
    return split ? [{ attack, ...split, scaled: scaledFamily(attack, split.eps) }] : [];
  });
  const budgets = new Map<string, Set<number>>();
  for (const m of members) budgets.set(m.scaled, (budgets.get(m.scaled) ?? new Set()).add(m.eps));
  const families = new Map<string, EpsMember[]>();
  for (const { attack, eps, family, scaled } of members) {
    const key = budgets.get(scaled)!.size > 1 ? scaled : family;
    families.set(key, [...(families.get(key) ?? []), { attack, eps }]);
  }
  for (const list of families.values()) list.sort((a, b) => a.eps - b.eps);
  return families;
}

/** The family key of {@link splitEps}, with a `step` written as a multiple of ε. */
function scaledFamily(attack: string, eps: number): string {
  const colon = attack.indexOf(':');
  const rest = attack
    .slice(colon + 1)
    .split(',')
    .filter((part) => part.split('=', 1)[0]!.trim() !== 'eps')
    .map((part) => {
      const [key, value] = part.split('=', 2) as [string, string | undefined];
      const step = Number(value);
      return key.trim() === 'step' && value !== undefined && Number.isFinite(step) && eps > 0 ? `step=${Number((step / eps).toPrecision(6))}·ε` : part;
    });
  return rest.length > 0 ? `${attack.slice(0, colon)}:${rest.join(',')}` : attack.slice(0, colon);
}

/**
 * `pgd:eps=0.3,steps=40` → `{ family: 'pgd:steps=40', eps: 0.3 }`; ids without a numeric `eps`
 * (`worst-case`, minimization attacks) → undefined.
 */
export function splitEps(attack: string): { family: string; eps: number } | undefined {
  const colon = attack.indexOf(':');
  if (colon < 0) return undefined;
  const name = attack.slice(0, colon);
  let eps: number | undefined;
  const rest: string[] = [];
  for (const part of attack.slice(colon + 1).split(',')) {
    const [key, value] = part.split('=', 2) as [string, string | undefined];
    if (key.trim() === 'eps' && value !== undefined && value.trim() !== '' && Number.isFinite(Number(value))) eps = Number(value);
    else rest.push(part);
  }
  if (eps === undefined) return undefined;
  return { family: rest.length > 0 ? `${name}:${rest.join(',')}` : name, eps };
}
