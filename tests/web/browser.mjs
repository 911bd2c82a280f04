// What the page tests share: the plan (XENPLUG_WEB_PLAN, JSON, from tests/interop_web.rs),
// `STEP <name> <ms>` lines, checks that throw, and Debian's chromium driven by playwright-core
// (no browser download: executablePath is the system's chromium). `drive(run)` opens the
// browser, runs `run(page)`, keeps a screenshot of a failure next to `plan.screenshot`, and
// prints `PASS` or exits with status 1. Every wait is bounded.
import process from 'node:process';

export const plan = JSON.parse(process.env.XENPLUG_WEB_PLAN ?? '{}');
const { chromium } = await import(plan.playwright || 'playwright-core');
export const WAIT = 15000;
const t0 = Date.now();
export const step = (name) => console.log(`STEP ${name} ${Date.now() - t0}ms`);
export function check(condition, what) {
  if (!condition) throw new Error(`check failed: ${what}`);
}

export async function drive(run, { fullPage = false } = {}) {
  const context = await chromium.launchPersistentContext(plan.profile, {
    executablePath: plan.chromium || '/usr/bin/chromium',
    headless: true,
    timeout: WAIT * 2,
    viewport: { width: 1200, height: 900 },
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-features=MediaRouter,DialMediaRouteProvider,OptimizationHints',
    ],
  });
  context.setDefaultTimeout(WAIT);
  step('browser');
  let failed = null;
  const page = context.pages()[0] ?? (await context.newPage());
  try {
    await run(page);
  } catch (error) {
    failed = error;
    // What the page showed when it failed, next to where the screenshot goes.
    await page
      .screenshot({ path: plan.screenshot.replace(/\.png$/, '-failed.png'), fullPage })
      .catch(() => {});
  } finally {
    await context.close();
  }
  if (failed) {
    console.error(failed.stack || String(failed));
    process.exit(1);
  }
  console.log('PASS');
}
