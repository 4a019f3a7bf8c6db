/**
 * The result of a rollout, rendered: a terminal table, Markdown, JSON and an SVG chart of accuracy
 * against on-device latency. Everything but writeResultFiles is pure.
 */
export {
  rolloutResult,
  verdictLabel,
  TEACHER_REFERENCE,
  type RolloutResult,
  type ClassResult,
  type VariantResult,
  type ChosenResult,
} from './rollout-result.js';
export { renderResultTable, headline } from './render-table.js';
export { renderResultMarkdown } from './render-markdown.js';
export {
  renderResultSvg,
  chartPoints,
  logTicks,
  linearTicks,
  type ChartPoint,
} from './render-svg.js';
export { writeResultFiles, type ResultFiles } from './write-result-files.js';
export * from './format.js';
