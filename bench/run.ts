/**
 * `npm run bench -- <name> [options]`: runs one benchmark and writes its results under
 * bench-results/. Benchmarks are not tests: they report numbers (and ratios within one run),
 * they never pass or fail on a time.
 */
import { runAgentFootprintBenchmark } from './agent-footprint.js';
import { runCompressionBenchmark } from './compression.js';
import { runFanoutBenchmark } from './fanout.js';
import { runFleetBenchmark } from './fleet.js';
import { runPlannerBenchmark } from './planner.js';
import { runRepeatabilityBenchmark } from './repeatability.js';
import { runRolloutScaleBenchmark } from './rollout-scale.js';

const BENCHMARKS: Record<string, (args: string[]) => Promise<void>> = {
  fleet: runFleetBenchmark,
  fanout: runFanoutBenchmark,
  compression: runCompressionBenchmark,
  planner: runPlannerBenchmark,
  repeatability: runRepeatabilityBenchmark,
  'rollout-scale': runRolloutScaleBenchmark,
  'agent-footprint': runAgentFootprintBenchmark,
};

const [name, ...args] = process.argv.slice(2);
const bench = name ? BENCHMARKS[name] : undefined;
if (!bench) {
  console.error(`usage: npm run bench -- <${Object.keys(BENCHMARKS).join('|')}> [options]`);
  process.exit(2);
}
bench(args).then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
