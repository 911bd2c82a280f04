// The console's web page in Debian's chromium, driven by playwright-core (no browser download:
// executablePath is the system's chromium). Run by tests/interop_web.rs inside the test's
// network namespace, with XENPLUG_WEB_PLAN (JSON) saying what to expect:
//   url, host, hostName, vm, vmName, echo, domainControl, text, late, lateName, screenshot, profile,
//   chromium, playwright (optional: where playwright-core is, else the one next to this file),
//   sources (optional: the API names the header lists, space-separated, when the console merges
//   several sources; empty or absent for one source), token (the admin's token: the page opens
//   on its sign-in form), viewerToken and foreign (optional: then, at the end, a viewer sees no
//   enabled action and a forced call is refused inline, and a page of another origin posts a
//   form to the console, which must change nothing).
// It prints `STEP <name> <ms>` as it goes, `ADD-VM` when the test should add a VM, and `PASS`
// at the end; any failed check throws (exit status 1). Every wait is bounded.
import { plan, WAIT, step, check, drive } from './browser.mjs';

const LATE_WAIT = 45000;

await drive(run, { fullPage: true });

async function run(page) {
  const foreign = [];
  const problems = [];
  let posts = 0; // POSTs the page sent
  page.on('request', (request) => {
    if (!request.url().startsWith(plan.url)) foreign.push(request.url());
    if (request.method() === 'POST') posts += 1;
  });
  page.on('console', (message) => {
    // Chromium logs every 401 and 403 answer; the sign-in and a refused call expect them.
    const refused = /status of 40[13]/.test(message.text());
    if (message.type() === 'error' && !refused) problems.push(message.text());
  });
  page.on('pageerror', (error) => problems.push(String(error)));

  await page.goto(plan.url, { waitUntil: 'load' });
  await signIn(page, plan.token, 'admin');
  await page.evaluate(() => {
    window.notReloaded = true;
  });
  const host = page.locator(`[data-host="${plan.host}"]`);
  await host.waitFor();
  const vm = page.locator(`[data-vm="${plan.vm}"]`);
  check(!(await vm.isVisible()), 'hypervisors start collapsed');
  step('loaded');

  // Several sources: the header lists them, all reachable; one source: no list.
  const sources = (plan.sources || '').split(' ').filter(Boolean);
  const shown = page.locator('#sources .source');
  if (sources.length > 0) {
    await shown.first().waitFor();
    const names = await shown.evaluateAll((nodes) => nodes.map((n) => n.dataset.source));
    check(JSON.stringify(names) === JSON.stringify(sources), `the header lists the sources: ${names}`);
    const states = await shown.evaluateAll((nodes) => nodes.map((n) => n.dataset.state));
    check(states.every((s) => s === 'ok'), `every source reachable: ${states}`);
  } else {
    check(await page.locator('#sources').isHidden(), 'one source: no list of sources');
  }

  // Expand the hypervisor, then the VM: its owner's service and the lifecycle actions.
  await host.locator('.row').first().locator('.toggle').click();
  await vm.waitFor({ state: 'visible' });
  check((await vm.locator('.name').first().textContent()) === plan.vmName, 'the VM name');

  // The hypervisor's own action, through the tracker's relay to its Hypervisor service.
  const hostService = host.locator('.host-service');
  await hostService.locator('form[data-action="GetHostInfo"] button').click();
  const hostInfo = hostService.locator('[data-outcome]');
  await hostInfo.waitFor();
  check((await hostInfo.getAttribute('data-outcome')) === 'ok', `GetHostInfo succeeded: ${await hostInfo.textContent()}`);
  const hostName = await hostService.locator('[data-output="HostName"]').textContent();
  check(hostName.includes(plan.hostName), `GetHostInfo names the host: ${JSON.stringify(hostName)}`);
  step('host-action');
  await vm.locator('.row').first().locator('.toggle').click();
  const echo = vm.locator(`[data-service="${plan.echo}"]`);
  await echo.waitFor({ state: 'visible' });
  const life = vm.locator(`[data-service="${plan.domainControl}"]`);
  await life.waitFor({ state: 'visible' });
  step('expanded');

  // The owner's action: its result inline, device text shown as text.
  const form = echo.locator('form[data-action="Echo"]');
  const typed = form.locator('[data-arg="Text"]');
  if ((await typed.count()) > 0) {
    await typed.fill(plan.text);
  } else {
    await form.locator('[data-free="name"]').first().fill('Text');
    await form.locator('[data-free="value"]').first().fill(plan.text);
  }
  await form.locator('button[type="submit"]').click();
  const outcome = form.locator('[data-outcome]');
  await outcome.waitFor();
  check((await outcome.getAttribute('data-outcome')) === 'ok', `Echo succeeded: ${await outcome.textContent()}`);
  const replies = form.locator('[data-output="Reply"]');
  check((await replies.count()) === 1, `Echo shows its Reply: ${await outcome.textContent()}`);
  const reply = await replies.textContent();
  check(reply === plan.text, `Reply is the text sent, as text: ${JSON.stringify(reply)}`);
  check((await form.locator('.result b').count()) === 0, 'no markup from an output');
  step('echo');

  // Pause (idempotent: no confirmation); the run state follows live.
  const before = posts;
  await life.locator('form[data-action="Pause"] button').click();
  await life.locator('[data-outcome="ok"]').waitFor();
  check(posts === before + 1, 'Pause was sent at once');
  await vm.locator('[data-field="run-state"]', { hasText: 'paused' }).waitFor();
  step('paused-live');

  // Reboot asks first; confirmed, the UPnP error (a paused domain cannot reboot) is inline.
  await life.locator('form[data-action="Reboot"] button').click();
  const confirmReboot = life.locator('[data-confirm-for="Reboot"]');
  await confirmReboot.waitFor();
  check(posts === before + 1, 'nothing sent before the confirmation');
  await confirmReboot.locator('[data-confirm="yes"]').click();
  await life.locator('[data-outcome="error"]', { hasText: 'UPnP error 701' }).waitFor();
  step('reboot-701');

  // Destroy asks first; cancelled, nothing is sent.
  const sent = posts;
  await life.locator('form[data-action="Destroy"] button').click();
  const confirmDestroy = life.locator('[data-confirm-for="Destroy"]');
  await confirmDestroy.waitFor();
  await confirmDestroy.locator('[data-confirm="no"]').click();
  await confirmDestroy.waitFor({ state: 'detached' });
  check(posts === sent, 'a cancelled Destroy sends nothing');
  step('destroy-cancelled');

  await life.locator('form[data-action="Resume"] button').click();
  await vm.locator('[data-field="run-state"]', { hasText: 'running' }).waitFor();
  step('resumed-live');

  // A VM added on the hypervisor appears without a reload; what was open stays open.
  console.log('ADD-VM');
  const late = page.locator(`[data-vm="${plan.late}"]`);
  await late.waitFor({ state: 'visible', timeout: LATE_WAIT });
  // A VM heard of by GENA first is listed at once and named when its description arrives.
  await late.locator('.name', { hasText: plan.lateName }).first().waitFor({ timeout: LATE_WAIT });
  const lateName = await late.locator('.name').first().textContent();
  check(lateName.includes(plan.lateName), `the late VM name, as text: ${JSON.stringify(lateName)}`);
  check((await late.locator('img').count()) === 0, 'no element made from a VM name');
  check(await page.evaluate(() => window.notReloaded === true && window.xss === undefined), 'no reload, no script ran');
  check((await host.getAttribute('aria-expanded')) === 'true', 'the hypervisor stays expanded');
  check((await vm.getAttribute('aria-expanded')) === 'true', 'the VM stays expanded');
  check((await form.locator('[data-output="Reply"]').textContent()) === plan.text, 'the Echo result stays');
  check((await page.locator('#status').getAttribute('data-state')) === 'live', 'the status says live');
  step('late-vm');

  await page.locator('#events li').first().waitFor();
  if (sources.length > 0) {
    const tags = await page.locator('#events li .source').allTextContents();
    check(tags.length > 0 && tags.every((t) => sources.includes(t)), `events tagged with their source: ${tags}`);
  }
  await page.screenshot({ path: plan.screenshot, fullPage: true });
  step('screenshot');
  check(foreign.length === 0, `requests outside the console: ${foreign.join(', ')}`);
  check(problems.length === 0, `browser console errors: ${problems.join(' | ')}`);
  if (plan.viewerToken) await asViewer(page);
  if (plan.foreign) await fromAnotherOrigin(page);
}

/** Signs in with `token` when the page asks for one, and checks the role it shows. */
async function signIn(page, token, role) {
  if (!token) return;
  const form = page.locator('#sign-in');
  await form.waitFor({ state: 'visible' });
  await page.locator('#token').fill(token);
  await page.locator('#sign-in-form button[type="submit"]').click();
  const who = page.locator('#who');
  await who.waitFor({ state: 'visible' });
  check((await who.getAttribute('data-role')) === role, `signed in as ${role}: ${await who.textContent()}`);
  check(await form.isHidden(), 'the sign-in form is gone');
  step(`signed-in-${role}`);
}

/** A viewer: every action shown disabled; one forced anyway is refused by the server, inline. */
async function asViewer(page) {
  await page.locator('#sign-out').click();
  await page.waitForLoadState('load');
  await signIn(page, plan.viewerToken, 'viewer');
  const host = page.locator(`[data-host="${plan.host}"]`);
  await host.waitFor();
  await host.locator('.row').first().locator('.toggle').click();
  const vm = page.locator(`[data-vm="${plan.vm}"]`);
  await vm.waitFor({ state: 'visible' });
  await vm.locator('.row').first().locator('.toggle').click();
  const life = vm.locator(`[data-service="${plan.domainControl}"]`);
  await life.waitFor({ state: 'visible' });
  const calls = page.locator('#hosts button.call, #vms button.call');
  const states = await calls.evaluateAll((nodes) => nodes.map((n) => n.disabled));
  check(states.length > 0 && states.every(Boolean), `a viewer sees no enabled action: ${states}`);
  step('viewer-disabled');
  const pause = life.locator('form[data-action="Pause"] button');
  await pause.evaluate((button) => {
    button.disabled = false;
  });
  await pause.click();
  const refused = life.locator('[data-outcome="error"]', { hasText: 'HTTP 403' });
  await refused.waitFor();
  step('viewer-forced-403');
}

/** A page of another origin auto-posts a form to the console's API: refused, nothing done. */
async function fromAnotherOrigin(page) {
  const answer = await page.goto(plan.foreign, { waitUntil: 'load' });
  check(answer !== null, 'the other origin\'s page loaded');
  await page.waitForURL((url) => url.href.startsWith(plan.url), { timeout: WAIT });
  const status = await page.evaluate(() => document.body.innerText);
  check(/cross-origin|sign in|token/i.test(status), `the console refused the form: ${status}`);
  step('foreign-form-refused');
}
