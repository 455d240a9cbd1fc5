/** vitest globalSetup: provides the Debian packages the suite needs before any test file runs. */
import { planSetup, provide, SYSTEM_PACKAGES, thisMachine } from './system-packages.js';

export default function setup(): void {
  const machine = thisMachine();
  provide(planSetup(SYSTEM_PACKAGES, machine), machine, (line) => process.stderr.write(`${line}\n`));
}
