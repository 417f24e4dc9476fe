import { TestEnvironment } from 'jest-environment-node';

/**
 * Jest's node environment with the worker process's time zone set for one test file, for code that must not depend on
 * it (a JS Date that pg writes in local time). A test file's `process.env` is Jest's copy: setting TZ there changes no
 * clock. In the file's docblock:
 *
 *   @jest-environment ./test/support/time-zone-environment.mjs
 *   @jest-environment-options {"timeZone": "America/New_York"}
 *
 * Set before the file's modules load; put back when it ends (the worker runs other files after it).
 */
export default class TimeZoneEnvironment extends TestEnvironment {
  constructor(config, context) {
    super(config, context);
    this.timeZone = config.projectConfig.testEnvironmentOptions?.timeZone;
  }

  async setup() {
    await super.setup();
    this.previous = process.env.TZ;
    if (this.timeZone) process.env.TZ = this.timeZone;
  }

  async teardown() {
    if (this.previous === undefined) delete process.env.TZ;
    else process.env.TZ = this.previous;
    await super.teardown();
  }
}
