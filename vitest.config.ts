import { defineConfig } from 'vitest/config';

// End-to-end tests start real daemons (rtpengine, SIPp, baresip) and measure audio; on a
// 2-core machine they run one file at a time so timing-sensitive media checks stay reliable.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters: ['default', './test/support/summary-reporter.ts'],
  },
});
