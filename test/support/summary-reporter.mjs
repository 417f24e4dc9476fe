// Prints one plain closing line, "N passed, N failed, N skipped", alone on its line, for CI to read.
// A test file that cannot even load has no failed tests of its own; it counts as one failure here
// so that such a run never reads "0 failed".
export default class SummaryReporter {
  onRunComplete(_contexts, results) {
    const failed = results.numFailedTests + results.numRuntimeErrorTestSuites;
    const skipped = results.numPendingTests + results.numTodoTests;
    process.stdout.write(`\n${results.numPassedTests} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}\n`);
  }
}
