// Browser flows of the web console, driven in Debian's chromium by playwright-core.
//
// Run by `tests/tests/console` against a `cbank dev` cluster:
//   node console.mjs <console url> <keys dir> <screenshot dir> <flow>...
// Flows: sme, government, auditor, usage, institution, operator. Each flow opens a fresh browser
// context, imports the party's key file the way a person would (the file input), checks what
// the page shows, makes at least one bad request per kind of form and checks that the API's
// `{code, message}` is shown, and saves `<screenshot dir>/<flow>.png`. A failed check throws:
// the process exits non-zero with the reason, and the page's state at that moment is saved as
// `<flow>-failed.png`.

import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const [base, keysDir, shotsDir, ...flows] = process.argv.slice(2);
if (!base || !keysDir || !shotsDir || flows.length === 0) {
  console.error('usage: node console.mjs <console url> <keys dir> <screenshot dir> <flow>...');
  process.exit(2);
}
mkdirSync(shotsDir, { recursive: true });
const CHROMIUM = process.env.CBANK_CHROMIUM ?? '/usr/bin/chromium';
const WAIT_MS = 20000;

function check(condition, what) {
  if (!condition) throw new Error(`check failed: ${what}`);
}

/** Minor units from a shown amount such as "¥99,993.07" or "10,000,000 tokens". */
function minor(text) {
  const match = /-?[\d,]+(?:\.(\d+))?/.exec(text.replace(/[¥\s]/g, ''));
  if (!match) throw new Error(`no amount in ${JSON.stringify(text)}`);
  return BigInt(match[0].replace(/[,.]/g, ''));
}

async function text(page, selector) {
  await page.waitForSelector(selector, { timeout: WAIT_MS });
  return (await page.textContent(selector)).trim();
}

/** Waits until `selector`'s text satisfies `test`; returns that text. */
async function waitText(page, selector, test, what) {
  const deadline = Date.now() + WAIT_MS;
  let last = '';
  while (Date.now() < deadline) {
    last = (await page.textContent(selector).catch(() => '')) ?? '';
    if (test(last.trim())) return last.trim();
    await page.waitForTimeout(200);
  }
  throw new Error(`timed out waiting for ${what}; ${selector} shows ${JSON.stringify(last)}`);
}

async function importKey(page, party) {
  await page.setInputFiles('#key-file', join(keysDir, `${party}.json`));
  await page.click('#key-import button[type=submit]');
  await waitText(page, '#key-current', (t) => t.includes(`Signing as ${party}`), `the key of ${party} to load`);
}

async function submitExpectingError(page, form, codePart, what) {
  await page.click(`${form} button[type=submit]`);
  const shown = await waitText(page, `${form} .error`, (t) => t.length > 0, `${what}: an error under ${form}`);
  check(shown.includes(codePart), `${what}: expected ${JSON.stringify(codePart)} in ${JSON.stringify(shown)}`);
  console.log(`  ${what}: the form shows "${shown}"`);
  return shown;
}

async function submitExpectingOk(page, form, what) {
  await page.click(`${form} button[type=submit]`);
  const deadline = Date.now() + WAIT_MS;
  while (Date.now() < deadline) {
    const error = ((await page.textContent(`${form} .error`)) ?? '').trim();
    if (error) throw new Error(`${what}: the form shows the error ${JSON.stringify(error)}`);
    const ok = ((await page.textContent(`${form} .ok`)) ?? '').trim();
    if (ok) { console.log(`  ${what}: "${ok}"`); return ok; }
    await page.waitForTimeout(200);
  }
  throw new Error(`${what}: neither a success nor an error was shown`);
}

const FLOWS = {
  // An SME imports its key file, buys the token package with a voucher paying 30%, and sees
  // its CNY balance fall by 70% of the price and its quota grow by the package's tokens.
  async sme(page) {
    await page.goto(`${base}/console/#sme`);
    // A key file that is not one: the import form says why.
    await page.fill('#key-text', '{"party": "sme-alpha", "public_key": "00", "secret_key": "zz"}');
    await submitExpectingError(page, '#key-import', 'secret_key', 'a corrupt key file');
    await page.fill('#key-text', '');
    await importKey(page, 'sme-alpha');
    const cny = '[data-account="10201"]';
    const before = minor(await text(page, cny));
    const quotaBefore = minor(await text(page, '[data-quota-remaining="10203"]'));
    const voucherBefore = minor(await text(page, '[data-voucher-remaining="8001"]'));
    console.log(`  before: CNY ${before} fen, quota ${quotaBefore} tokens, voucher 8001 ${voucherBefore} fen`);

    // Bad input the API refuses: a purchase id that is not a number.
    await page.selectOption('#buy-form [name=package]', 'qwen-10m-30d');
    await page.selectOption('#buy-form [name=voucher]', '8001');
    await page.fill('#buy-form [name=purchase_id]', 'not-a-number');
    await submitExpectingError(page, '#buy-form', 'malformed_json', 'a purchase id that is not a number');

    await page.fill('#buy-form [name=purchase_id]', String(Date.now()));
    const ok = await submitExpectingOk(page, '#buy-form', 'buying qwen-10m-30d with voucher 8001');
    check(ok.includes('voucher 8001 paid ¥2.97'), `the voucher pays 30% of ¥9.90, ¥2.97: ${ok}`);
    const after = minor(await waitText(page, cny, (t) => minor(t) !== before, 'the CNY balance to change'));
    check(before - after === 693n, `CNY falls by ¥6.93 (70% of ¥9.90): ${before} → ${after}`);
    const quotaAfter = minor(await waitText(page, '[data-quota-remaining="10203"]', (t) => minor(t) !== quotaBefore, 'the quota to change'));
    check(quotaAfter - quotaBefore === 10000000n, `the quota grows by 10,000,000 tokens: ${quotaBefore} → ${quotaAfter}`);
    const voucherAfter = minor(await waitText(page, '[data-voucher-remaining="8001"]', (t) => minor(t) !== voucherBefore, 'the voucher to be drawn'));
    check(voucherBefore - voucherAfter === 297n, `voucher 8001 pays ¥2.97: ${voucherBefore} → ${voucherAfter}`);
    console.log(`  after: CNY ${after} fen, quota ${quotaAfter} tokens, voucher 8001 ${voucherAfter} fen`);

    // The order form: an order the ledger refuses (more money than the SME has).
    await page.selectOption('#order-form [name=side]', 'buy');
    await page.fill('#order-form [name=price]', '25.00');
    await page.fill('#order-form [name=lots]', '1000000');
    await submitExpectingError(page, '#order-form', 'insufficient_funds', 'a bid beyond the balance');
    // A resting bid, then its cancellation from the open orders.
    await page.fill('#order-form [name=price]', '20.00');
    await page.fill('#order-form [name=lots]', '1');
    const placed = await submitExpectingOk(page, '#order-form', 'a resting bid of ¥20.00');
    const orderId = /order (\d+)/.exec(placed)[1];
    await page.waitForSelector(`[data-cancel="${orderId}"]`, { timeout: WAIT_MS });
    await page.click(`[data-cancel="${orderId}"]`);
    await page.waitForSelector(`[data-cancel="${orderId}"]`, { state: 'detached', timeout: WAIT_MS });
    console.log(`  order ${orderId} placed and cancelled`);
    // A bid that crosses the demo's ask (¥25.00): it trades, the voucher pays 30% of the fill,
    // and the trade shows in the recent trades and the candles.
    await page.fill('#order-form [name=price]', '25.00');
    await page.selectOption('#order-form [name=tif]', 'ioc');
    await page.selectOption('#order-form [name=voucher]', '8001');
    await submitExpectingOk(page, '#order-form', 'a bid of ¥25.00 against the ask, with voucher 8001');
    await waitText(page, '#market-trades', (t) => t.includes('sme-alpha') && t.includes('univ-tsinghua'), 'the trade in the recent trades');
    await page.waitForSelector('#market-candles svg rect', { timeout: WAIT_MS });
    await waitText(page, '[data-voucher-remaining="8001"]', (t) => voucherAfter - minor(t) === 750n, 'voucher 8001 to pay ¥7.50 of the ¥25.00 fill');
    await page.waitForSelector('#market-depth svg', { timeout: WAIT_MS });
    await page.evaluate(() => window.scrollTo(0, 0));
  },

  // A government issues a voucher and sees it in its programme's report.
  async government(page) {
    await page.goto(`${base}/console/#government`);
    await importKey(page, 'gov-haidian');
    await page.waitForSelector('#gov-report-totals [data-total="issued"]', { timeout: WAIT_MS });
    const issuedBefore = minor(await text(page, '[data-total="issued"]'));
    // More than the programme's whole budget (¥50,000,000): the ledger refuses it.
    await page.fill('#issue-form [name=beneficiary]', 'sme-beta');
    await page.fill('#issue-form [name=amount]', '60000000.00');
    await submitExpectingError(page, '#issue-form', 'programme_budget_exceeded', 'a voucher over the budget');
    // An amount that is not money: refused in the browser before anything is signed.
    await page.fill('#issue-form [name=amount]', '12.345');
    await submitExpectingError(page, '#issue-form', 'at most 2 decimals', 'an amount with three decimals');
    // A beneficiary that is not an SME.
    await page.fill('#issue-form [name=amount]', '1000.00');
    await page.fill('#issue-form [name=beneficiary]', 'univ-tsinghua');
    await submitExpectingError(page, '#issue-form', 'beneficiary_not_eligible', 'a voucher for an institution');
    await page.fill('#issue-form [name=beneficiary]', 'sme-beta');
    const voucherId = String(700000 + (Date.now() % 100000));
    await page.fill('#issue-form [name=voucher_id]', voucherId);
    await submitExpectingOk(page, '#issue-form', `issuing voucher ${voucherId} of ¥1,000.00 to sme-beta`);
    const issuedAfter = minor(await waitText(page, '[data-total="issued"]', (t) => minor(t) !== issuedBefore, 'the issued total to change'));
    check(issuedAfter - issuedBefore === 100000n, `issued grows by ¥1,000.00: ${issuedBefore} → ${issuedAfter}`);
    await waitText(page, '#gov-report-lines', (t) => t.includes(voucherId) && t.includes('issued'), `voucher ${voucherId} in the report's lines`);
    // Revoke it: the report shows the revocation.
    await page.fill('#revoke-form [name=voucher_id]', voucherId);
    await submitExpectingOk(page, '#revoke-form', `revoking voucher ${voucherId}`);
    await waitText(page, '[data-total="revoked"]', (t) => minor(t) === 100000n, 'the revoked total to be ¥1,000.00');
    // The revoke form: a voucher that does not exist.
    await page.fill('#revoke-form [name=voucher_id]', '999999999');
    await submitExpectingError(page, '#revoke-form', 'voucher_unknown', 'revoking an unknown voucher');
    check((await page.getAttribute('#report-csv', 'href')).endsWith('/report?format=csv'), 'the report exports as CSV');
    // The programme form: a share over 100% is refused by the ledger, a good one is created.
    await page.click('#programme-details summary');
    const programmeId = `console-${Date.now() % 1000000}`;
    await page.fill('#programme-form [name=programme_id]', programmeId);
    await page.fill('#programme-form [name=title]', 'Console test vouchers');
    await page.fill('#programme-form [name=share]', '150');
    await submitExpectingError(page, '#programme-form', 'programme_spec_invalid', 'a programme paying 150% of each purchase');
    await page.fill('#programme-form [name=share]', '25');
    await submitExpectingOk(page, '#programme-form', `creating programme ${programmeId}`);
    await waitText(page, '#gov-programmes', (t) => t.includes(programmeId) && t.includes('25%'), `programme ${programmeId} in the list`);
    await page.click('#programme-details summary');
    await page.evaluate(() => document.querySelector('#gov-report-totals').scrollIntoView());
  },

  // An auditor verifies the chain: the node replays it, the browser checks the signatures.
  async auditor(page) {
    await page.goto(`${base}/console/#auditor`);
    await importKey(page, 'auditor-public');
    await page.waitForSelector('#aud-head-hash', { timeout: WAIT_MS });
    await page.fill('#verify-form [name=to]', '99999999');
    await submitExpectingError(page, '#verify-form', 'invalid_parameter', 'verifying past the head');
    await page.fill('#verify-form [name=to]', '');
    await page.fill('#verify-form [name=trust]', 'not-a-key');
    await submitExpectingError(page, '#verify-form', 'invalid_parameter', 'a trusted key that is not hex');
    await page.fill('#verify-form [name=trust]', '');
    await page.click('#verify-form button[type=submit]');
    const verdict = await waitText(page, '#verify-verdict', (t) => t.length > 0, 'the verdict');
    check(verdict.startsWith('VERIFIED'), `the chain verifies: ${verdict}`);
    const chain = await text(page, '#chain-verdict');
    check(chain.startsWith('ok:'), `the browser checks the blake3 chain: ${chain}`);
    const signatures = await text(page, '#aud-checkpoints');
    check((signatures.match(/signature valid/g) ?? []).length === 3, `three node signatures verify in the browser: ${signatures}`);
    check(!/INVALID|different hash/.test(signatures), `no checkpoint fails: ${signatures}`);
    console.log(`  ${verdict}; ${(await text(page, '#aud-result')).replace(/\s+/g, ' ').slice(0, 300)}`);
  },

  // The SME's quota after the provider metered 85% of it (the test records the usage): the
  // chart and the 80% alert.
  async usage(page) {
    await page.goto(`${base}/console/#sme`);
    // A key made in the browser for a party nobody registered: its first write is refused.
    await page.fill('#key-new-party', 'sme-gamma');
    await page.click('#key-new button[type=submit]');
    await waitText(page, '#key-current', (t) => t.includes('Signing as sme-gamma') && t.includes('not registered'), 'the new key of sme-gamma');
    check(await page.$('#key-list a[download="sme-gamma.json"]') !== null, 'the new key can be saved as a key file');
    await page.fill('#order-form [name=price]', '20.00');
    await submitExpectingError(page, '#order-form', 'signer_unknown', 'an order signed by an unregistered party');
    await page.click('[data-forget="sme-gamma"]');
    await importKey(page, 'sme-alpha');
    const quotas = await waitText(page, '#sme-quotas', (t) => t.includes('85.0% used'), 'the quota chart at 85%');
    check(/alert\s*quota\s*threshold/.test(quotas) && /\b80%/.test(quotas), `the 80% alert is listed: ${quotas}`);
    check(quotas.includes('8,500,000 tokens used'), `the totals show the usage: ${quotas}`);
    await page.waitForSelector('#sme-quotas svg path', { timeout: WAIT_MS });
    await page.evaluate(() => document.querySelector('#sme-quotas').scrollIntoView());
  },

  // The operator's view: members, leader, Raft indices, throughput.
  async operator(page) {
    await page.goto(`${base}/console/#operator`);
    const cluster = await waitText(page, '#op-cluster', (t) => t.includes('leader'), 'the cluster table');
    check((cluster.match(/127\.0\.0\.1/g) ?? []).length >= 6, `three members with HTTP and Raft addresses: ${cluster}`);
    // Only the leader knows every member's log index: follow the link to its console.
    const leader = await page.$('#op-cluster tr:has(b) a');
    check(leader !== null, `a link to the leader's console: ${cluster}`);
    await leader.click();
    await waitText(page, '#node-line', (t) => t.includes('(leader)'), "the leader's console");
    const held = await waitText(page, '#op-cluster', (t) => t.includes('log index held') && !t.includes('…') && !t.includes('ask the leader'), "every member's log index");
    const indexes = [...held.matchAll(/(leader|yes)(\d+)/g)].length;
    console.log(`  the leader's view: ${held.replace(/\s+/g, ' ').slice(0, 200)}`);
    check(indexes >= 3, `a log index for each of the three members: ${held}`);
    await waitText(page, '#op-throughput', (t) => /now: [\d.]+ entries\/s/.test(t), 'a throughput figure');
    await page.waitForTimeout(3000); // a few samples for the throughput chart
  },

  // The institution's view: its GPU-hour balance, statement and the withdrawal form's errors.
  async institution(page) {
    await page.goto(`${base}/console/#institution`);
    await importKey(page, 'univ-tsinghua');
    await waitText(page, '#inst-balances', (t) => t.includes('GPUH:H100'), 'the GPU-hour balance');
    await waitText(page, '#inst-hosts', (t) => t.includes('gpu-bj-01') && t.includes('8× H100'), 'the host the test registered');
    await waitText(page, '#inst-offers', (t) => t.includes('501') && t.includes('0.46'), 'offer 501 with 1,680 GPU-seconds (0.46 GPU-h, rounded down) delivered');
    await waitText(page, '#inst-withdrawals', (t) => t.includes('601') && t.includes('allocated'), 'withdrawal 601 allocated');
    await page.waitForSelector('#inst-gpu-chart svg path', { timeout: WAIT_MS });
    await page.fill('#withdraw-form [name=class]', 'B200');
    await submitExpectingError(page, '#withdraw-form', '_unknown', 'withdrawing a class it holds no account of');
  },
};

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
let failed = false;
try {
  for (const flow of flows) {
    const run = FLOWS[flow];
    if (!run) throw new Error(`no flow ${flow}; flows: ${Object.keys(FLOWS).join(', ')}`);
    const context = await browser.newContext({ viewport: { width: 1280, height: 1400 } });
    const page = await context.newPage();
    const problems = [];
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
    page.on('console', (message) => { if (message.type() === 'error') problems.push(`console error: ${message.text()}`); });
    const started = Date.now();
    console.log(`flow ${flow}:`);
    try {
      await run(page);
      const path = join(shotsDir, `${flow}.png`);
      await page.screenshot({ path, fullPage: true });
      const pageErrors = problems.filter((p) => p.startsWith('page error') || p.includes('Content Security Policy'));
      check(pageErrors.length === 0, `no script errors: ${pageErrors.join('; ')}`);
      console.log(`flow ${flow}: passed in ${Date.now() - started} ms; screenshot ${path}`);
    } catch (error) {
      failed = true;
      const path = join(shotsDir, `${flow}-failed.png`);
      await page.screenshot({ path, fullPage: true }).catch(() => {});
      console.log(`flow ${flow}: FAILED: ${error.message}\n  ${problems.join('\n  ')}\n  screenshot ${path}`);
    }
    await context.close();
  }
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
