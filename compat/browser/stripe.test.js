// Issue 27 in real Chromium: with Stripe as the sandbox's provider (the
// repository's fake Stripe, run as its own process), a monthly plan is
// bought through the hosted checkout, which asks for no card and sends the
// buyer to Stripe's card page; the buyer pays there and lands on
// successUrl; the subscription, its order and invoice and the saved card
// are there through the API. Then a 3-D Secure card: Stripe's page asks to
// authenticate, the buyer approves, and lands on successUrl too.
'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const readline = require('node:readline');
const { spawn, execFileSync } = require('node:child_process');
const { chromium } = require('playwright-core');
const { startServer, api: call } = require('../node/server.js');
const { shoot } = require('./brand.js');

const REPO = path.resolve(__dirname, '..', '..');
const CHROMIUM = process.env.KELVIQ_CHROMIUM || '/usr/bin/chromium';
const FAKE = process.env.FAKE_STRIPE_BIN || path.join(REPO, 'target', 'debug', 'fake-stripe');
const BIN = process.env.KELVIQ_BIN || path.join(REPO, 'target', 'debug', 'kelviq');
const SECRET = 'whsec_browser_tests_0001';
let fake;
let fakeUrl;
let server;
let browser;

const api = (method, p, body) => call(server, method, p, body);

before(async () => {
  assert.ok(fs.existsSync(CHROMIUM), `Chromium is needed at ${CHROMIUM} (apt-get install chromium)`);
  assert.ok(fs.existsSync(FAKE), `the fake Stripe is needed at ${FAKE} (cargo build -p fake-stripe)`);
  fake = spawn(FAKE, ['--listen', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  fakeUrl = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('fake-stripe did not start')), 10000);
    readline.createInterface({ input: fake.stdout }).on('line', (line) => {
      if (line.startsWith('fake-stripe listening on ')) {
        clearTimeout(timer);
        resolve(line.split(' ')[3]);
      }
    });
  });
  server = await startServer('sqlite', { KELVIQ_STRIPE_API_BASE: fakeUrl });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kelviq-stripe-'));
  fs.writeFileSync(path.join(dir, 'sk'), 'sk_test_51BrowserTests0001');
  fs.writeFileSync(path.join(dir, 'whsec'), SECRET);
  execFileSync(BIN, ['providers', 'set', 'stripe', '--env', 'sandbox', '--secret-key-file', path.join(dir, 'sk'),
    '--webhook-secret-file', path.join(dir, 'whsec')], { env: server.env, stdio: 'pipe' });
  const hook = await fetch(`${fakeUrl}/_fake/webhook`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ url: `${server.url}/stripe/webhook/sandbox`, secret: SECRET }),
  });
  assert.equal(hook.status, 204);
  await api('POST', '/catalog/products/', { name: 'Suite', identifier: 'suite', taxCode: 'saas' });
  await api('POST', '/catalog/plans/', { name: 'Pro Plan', identifier: 'pro', product: 'suite' });
  await api('POST', '/catalog/plans/pro/prices/bulk/', {
    prices: [{ priceType: 'PAID', currency: 'USD', chargeCatalogPrice: [{ charges: [{ chargePeriod: 'MONTHLY', priceData: { amount: 49 } }] }] }],
  });
  await api('POST', '/catalog/plans/pro/publish/', {});
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  if (browser) await browser.close();
  if (server) await server.stop();
  if (fake) fake.kill('SIGTERM');
});

/** Buys `pro` monthly for `customer` with `card` on Stripe's page; the page, left on successUrl. */
async function buy(customer, card, authenticate) {
  const successUrl = `${server.url}/healthz?landed=${customer}`;
  const session = await api('POST', '/checkout/', {
    planIdentifier: 'pro', chargePeriod: 'MONTHLY', customerId: customer, successUrl,
    cancelUrl: `${server.url}/healthz?cancelled=yes`,
  });
  const page = await (await browser.newContext({ bypassCSP: true })).newPage();
  await page.goto(session.checkoutUrl);
  assert.equal(await page.locator('#card_number').count(), 0, 'no card field on our page');
  assert.equal(await page.locator('#pay').innerText(), 'Continue to payment');
  if (customer === 'stripe-1') await shoot(page, 'checkout-stripe');
  await page.fill('#email', `${customer}@example.com`);
  await page.fill('#name', 'Sam Stripe');
  await page.fill('#country', 'US');
  await Promise.all([page.waitForURL(/\/pay\/cs_test_/), page.click('#pay')]);
  assert.ok(page.url().startsWith(fakeUrl), `on Stripe's page: ${page.url()}`);
  assert.match(await page.locator('#submit').innerText(), /Pay 49\.00 USD/);
  await page.fill('#card_number', card);
  await page.fill('#expiry', '12/30');
  await page.fill('#cvc', '123');
  if (authenticate) {
    await Promise.all([page.waitForSelector('#approve'), page.click('#submit')]);
    await Promise.all([page.waitForURL(successUrl), page.click('#approve')]);
  } else {
    await Promise.all([page.waitForURL(successUrl), page.click('#submit')]);
  }
  assert.equal(page.url(), successUrl);
  return page;
}

async function bought(customer, last4) {
  const subs = await api('GET', `/subscriptions/?customer_id=${customer}`);
  assert.equal(subs.count, 1);
  assert.equal(subs.results[0].status, 'active');
  const orders = (await api('GET', '/orders/?page_size=100')).results.filter((o) => o.customer.customerId === customer);
  assert.equal(orders.length, 1);
  assert.equal(orders[0].status, 'COMPLETE');
  assert.equal(orders[0].amountTotal, '49.00');
  const invoices = await api('GET', `/invoices/?customer_id=${customer}`);
  assert.equal(invoices.results[0].status, 'PAID');
  const methods = await api('GET', `/payment-methods/?customer_id=${customer}`);
  assert.equal(methods.results.length, 1);
  assert.equal(methods.results[0].methodData.last4, last4);
  assert.equal(methods.results[0].isDefault, true);
}

test('buy through Stripe\'s card page and land on successUrl', async () => {
  const page = await buy('stripe-1', '4242 4242 4242 4242', false);
  await bought('stripe-1', '4242');
  await page.close();
});

test('a 3-D Secure card is authenticated on Stripe\'s page', async () => {
  const page = await buy('stripe-2', '4000 0025 0000 3155', true);
  await bought('stripe-2', '3155');
  await page.close();
});
