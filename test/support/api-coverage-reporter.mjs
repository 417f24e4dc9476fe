// Which API operations the tests never called successfully. Every test application's ResponseContract
// (test/support/contract.ts) records the operations it answered, with status and error code, into the directory this
// reporter names in OMNIZEN_API_CALLS_DIR (set before Jest starts its workers, which inherit it). At the end of a full
// run (every test file, no name filter; API_COVERAGE=1 reports a partial run too) it prints one summary line and the
// operations never answered with a 2xx, and writes the detail to <tmp>/omnizen-test-<pid>/api-coverage.json.
// Informational only: it never fails the run. The directory of a run is removed by the next run once its process ended.
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const PREFIX = 'omnizen-test-';

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function removeDirectoriesOfEndedRuns() {
  for (const name of readdirSync(tmpdir())) {
    const pid = /^omnizen-test-([0-9]+)$/.exec(name)?.[1];
    if (pid && !alive(Number(pid))) rmSync(join(tmpdir(), name), { recursive: true, force: true });
  }
}

/** The number of test files Jest would run without a path filter. */
function testFileCount(testContexts) {
  let count = 0;
  for (const { config, hasteFS } of testContexts) {
    const ignored = config.testPathIgnorePatterns.map((p) => new RegExp(p));
    for (const file of hasteFS.matchFilesWithGlob(config.testMatch, config.rootDir)) if (!ignored.some((re) => re.test(file))) count++;
  }
  return count;
}

/** The per-operation detail from the recorded calls and the document's operations. */
export function apiCoverage(callsDir) {
  if (!existsSync(callsDir)) return undefined; // no test started an application
  const files = readdirSync(callsDir);
  const catalogFile = files.find((f) => f.startsWith('operations-'));
  if (!catalogFile) return undefined;
  const operations = new Map(JSON.parse(readFileSync(join(callsDir, catalogFile), 'utf8')).map((op) => [op.operation, { ...op, seen: [] }]));
  // the same (operation, status, code) lines recur across files: parse each once
  const lines = new Set(files.filter((f) => f.startsWith('calls-')).flatMap((f) => readFileSync(join(callsDir, f), 'utf8').split('\n')));
  lines.delete('');
  for (const line of lines) {
    const call = JSON.parse(line);
    operations.get(call.operation)?.seen.push(call);
  }
  const detail = [...operations.values()].sort((a, b) => a.operation.localeCompare(b.operation)).map((op) => {
    const statusesSeen = [...new Set(op.seen.map((c) => c.status))].sort((a, b) => a - b);
    const codesSeen = new Set(op.seen.filter((c) => c.code).map((c) => c.code));
    return {
      operation: op.operation,
      operationId: op.operationId,
      answered2xx: statusesSeen.some((s) => s >= 200 && s < 300),
      statusesSeen,
      documentedStatusesNeverSeen: op.statuses.filter((s) => !statusesSeen.includes(Number(s))),
      errorCodesSeen: [...codesSeen].sort(),
      errorCodesNeverProduced: op.errorCodes.filter((c) => !codesSeen.has(c.code)).map((c) => `${c.status} ${c.code}`),
    };
  });
  return {
    operations: detail.length,
    answered2xx: detail.filter((op) => op.answered2xx).length,
    errorCodesNeverProduced: detail.reduce((n, op) => n + op.errorCodesNeverProduced.length, 0),
    detail,
  };
}

export default class ApiCoverageReporter {
  constructor(globalConfig) {
    this.globalConfig = globalConfig;
    this.runDir = join(tmpdir(), `${PREFIX}${process.pid}`);
    this.callsDir = join(this.runDir, 'api-calls');
    try {
      removeDirectoriesOfEndedRuns();
      rmSync(this.callsDir, { recursive: true, force: true });
      process.env.OMNIZEN_API_CALLS_DIR = this.callsDir;
    } catch (err) {
      process.stdout.write(`API operations: not recorded (${err.message})\n`);
    }
  }

  onRunComplete(testContexts, results) {
    let reported = false;
    try {
      const files = testFileCount(testContexts);
      const full = results.numTotalTestSuites === files && !this.globalConfig.testNamePattern;
      if (!full && process.env.API_COVERAGE !== '1') return;
      const coverage = apiCoverage(this.callsDir);
      if (!coverage) return;
      const report = join(this.runDir, 'api-coverage.json');
      writeFileSync(report, JSON.stringify({ testFiles: results.numTotalTestSuites, of: files, ...coverage }, null, 2));
      reported = true;
      const never = coverage.detail.filter((op) => !op.answered2xx);
      process.stdout.write(
        `\nAPI operations: ${coverage.answered2xx} of ${coverage.operations} answered 2xx in tests; ` +
          `${coverage.errorCodesNeverProduced} documented error codes never produced` +
          `${full ? '' : ` (partial run: ${results.numTotalTestSuites} of ${files} test files)`}\n` +
          (never.length ? `never answered 2xx:\n${never.map((op) => `  ${op.operation} (${op.operationId})\n`).join('')}` : '') +
          `detail: ${report}\n`,
      );
    } catch (err) {
      process.stdout.write(`API operations: no report (${err.message})\n`);
    } finally {
      rmSync(reported ? this.callsDir : this.runDir, { recursive: true, force: true });
    }
  }
}
