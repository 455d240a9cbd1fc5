/** Help texts built from the registries, so that `--help` lists exactly what the spec strings accept. */
import { ATTACKS } from '../attacks/index.js';

/**
 * `eval --help`'s list of attacks: each registered name with its one-line summary.
 *
 * @example
 *   program.command('eval').addHelpText('after', attacksHelp);
 */
export function attacksHelp(): string {
  const width = Math.max(...ATTACKS.map((a) => a.name.length));
  return (
    `\nAttacks (--attack NAME[:key=value,…]; unknown keys list the valid ones):\n` +
    `${ATTACKS.map((a) => `  ${a.name.padEnd(width)}  ${a.summary}`).join('\n')}\n`
  );
}
