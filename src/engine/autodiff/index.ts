/** Reverse-mode differentiation of ONNX graphs: see `differentiate.ts` and the rule table in `rules.ts`. */
export { Autodiff, MIN_OPSET, type UnsupportedNode } from './differentiate.js';
export { RULES, type Rule, type RuleContext } from './rules.js';
