// Hidden classes that outlive their objects.
//
// V8 frees a hidden class (a "map") once no object has it, and throws away
// every optimized function that had it embedded ("embedded weak objects
// cleared" under --trace-deopt). So after a full collection in a heap where
// no task is alive (a server between bursts, a test between cases), the next
// task builds TaskRecord's classes afresh and the scheduler's hot functions
// run unoptimized again for thousands of tasks. One object of each such class,
// taken through the changes its fields go through (a start time, an outcome)
// and kept for the life of the program, keeps the classes and the code.
//
// Measured in bench/cost.ts ("A fresh heap": a full collection before every
// run of 100k tasks, each run with a new manager), Deno 2.9, two runs each,
// interleaved: 1.09× to 1.38× the hand-written floor without the kept
// objects, 0.66× to 0.80× with them (warm runs unchanged). Without them,
// --trace-deopt counted 95 such deoptimizations in 14 runs; with them, none
// (tests/core/classes_test.ts checks it). JavaScriptCore (Bun) is not
// affected either way.

/** Objects kept for their hidden classes; never read. */
const kept: object[] = [];

/** Keeps `object` alive for the life of the program, for its hidden class. */
export function keepClassOf(object: object): void {
  kept.push(object);
}
