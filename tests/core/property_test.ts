// Property-based tests of the scheduler: random programs of runs, gates
// released in random order, cancellations, aborts, timeouts, groups, idle
// waiters and shutdowns, checked against the model in ./_model.ts after every
// event and every step.
//
// CI runs a fixed seed. To explore more cases locally:
//   PROPERTY_RUNS=20000 PROPERTY_SEED=7 deno test -A tests/property_test.ts
// A failure prints the shrunk program (one numbered step a line), the
// violations, and a trace of what the manager did.

import fc from "fast-check";
import { test } from "../_harness.ts";
import {
  env,
  play,
  type Program,
  programArb,
  shutdownProgramArb,
  watchEscapes,
} from "./_model.ts";

const runs = Number(env("PROPERTY_RUNS") ?? 200);
const seed = Number(env("PROPERTY_SEED") ?? 42);

async function check(
  arbitrary: fc.Arbitrary<Program>,
  numRuns: number,
): Promise<void> {
  const escapes = watchEscapes();
  try {
    await fc.assert(
      fc.asyncProperty(arbitrary, (program) => play(program, escapes)),
      { seed, numRuns },
    );
  } finally {
    escapes.stop();
  }
}

test("TaskManager keeps its invariants under random programs", async () => {
  await check(programArb(), runs);
});

test("shutdown() reports every task once under random programs", async () => {
  await check(shutdownProgramArb(), Math.max(1, Math.round(runs / 2)));
});
