// The hosted checkout page in real headless Chromium: fill it, see a declined
// card's message, pay, land on successUrl; the subscription exists. A
// discount code: a bad one says so, a good one shows the discounted total and
// is what is paid. axe-core finds no serious or critical violation. The
// page shows the seller's name, logo and test-mode badge, the order summary
// beside the form, the way back to cancelUrl, and fits from 360 px wide;
// screenshots at 375 px and 1280 px go to compat/browser/screenshots/.
'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const { chromium } = require('playwright-core');
const { startServer } = require('../node/server.js');
const { brand, shoot } = require('./brand.js');



const CHROMIUM = process.env.KELVIQ_CHROMIUM || '/usr/bin/chromium';
let server;
let browser;

async function api(method, path, body) {
  const res = await fetch(`${server.url}/api/v1${path}`, {
    method,
    headers: { Authorization: `Bearer ${server.serverKey}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await res.json();
  assert.ok(res.status < 300, `${method} ${path} → ${res.status} ${JSON.stringify(json)}`);
  return json;
}

before(async () => {
  assert.ok(fs.existsSync(CHROMIUM), `Chromium is needed at ${CHROMIUM} (apt-get install chromium)`);
  server = await startServer('sqlite');
  await api('POST', '/catalog/products/', { name: 'Suite', identifier: 'suite', taxCode: 'saas' });
  await api('POST', '/catalog/features/', { name: 'SSO', featureType: 'BOOLEAN' });
  await api('POST', '/catalog/plans/', { name: 'Pro Plan', identifier: 'pro', product: 'suite' });
  await api('POST', '/catalog/plans/pro/prices/bulk/', {
    prices: [{ priceType: 'PAID', currency: 'USD', chargeCatalogPrice: [{ charges: [{ chargePeriod: 'MONTHLY', priceData: { amount: 49 } }] }] }],
  });
  await api('POST', '/catalog/plans/pro/features/', { planEntitlements: [{ feature: 'sso', details: { value: true } }] });
  await api('POST', '/catalog/plans/pro/publish/', {});
  await brand(server);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  if (browser) await browser.close();
  if (server) await server.stop();
});

test('pay on the hosted page and land on successUrl', async () => {
  const successUrl = `${server.url}/healthz?landed=yes`;
  const session = await api('POST', '/checkout/', {
    planIdentifier: 'pro', chargePeriod: 'MONTHLY', customerId: 'browser-1', successUrl,
    email: 'ann@example.com', lockEmail: true, defaultBillingCountry: 'NL', discountsEnabled: true,
    cancelUrl: `${server.url}/healthz?cancelled=yes`,
  });
  // The page forbids every script (CSP); axe-core is injected past it.
  const page = await (await browser.newContext({ bypassCSP: true })).newPage();
  const requests = [];
  page.on('request', (r) => requests.push(r.url()));
  await page.goto(session.checkoutUrl);
  await page.addScriptTag({ content: fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8') });
  const axe = await page.evaluate(async () => await window.axe.run(document, { resultTypes: ['violations'] }));
  const serious = axe.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  assert.deepEqual(serious.map((v) => `${v.id}: ${v.help}`), [], 'axe-core: no serious or critical violation');
  assert.equal(await page.locator('h1').innerText(), 'Pro Plan');
  assert.match(await page.locator('#total').innerText(), /\$49\.00/);
  assert.equal(await page.locator('#email').inputValue(), 'ann@example.com');
  assert.equal(await page.locator('#email').getAttribute('readonly'), '', 'the email is locked');
  assert.equal(await page.locator('#country').inputValue(), 'NL');
  assert.equal(await page.locator('#discount_code').count(), 1, 'discount field shown when enabled');
  // The seller, the summary beside the form, the way back.
  assert.equal(await page.locator('.seller').innerText(), 'Northwind Studio');
  assert.equal(await page.locator('.top img').getAttribute('alt'), 'Northwind Studio logo');
  assert.ok(await page.locator('.top img').evaluate((i) => i.complete && i.naturalWidth === 48), 'the logo loads');
  assert.equal(await page.locator('.badge').innerText(), 'TEST MODE');
  assert.match(await page.locator('ul.features').innerText(), /SSO/);
  assert.equal(await page.locator('a.back').getAttribute('href'), `${server.url}/healthz?cancelled=yes`);
  assert.match(await page.locator('footer').innerText(), /help@northwind\.example/);
  const [summaryBox, formBox] = [await page.locator('.pane-summary').boundingBox(), await page.locator('#pay').boundingBox()];
  assert.ok(formBox.x > summaryBox.x + summaryBox.width - 1, 'on a wide screen the summary sits beside the form');
  await shoot(page, 'checkout');
  await page.setViewportSize({ width: 375, height: 900 });
  const [narrowSummary, narrowPay] = [await page.locator('.pane-summary').boundingBox(), await page.locator('#pay').boundingBox()];
  assert.ok(narrowPay.y > narrowSummary.y + narrowSummary.height - 1, 'on a phone the form follows the summary');
  await page.setViewportSize({ width: 1280, height: 900 });
  // Every field has a label.
  const unlabeled = await page.$$eval('input', (inputs) =>
    inputs.filter((i) => i.type !== 'hidden' && !document.querySelector(`label[for="${i.id}"]`)).map((i) => i.name));
  assert.deepEqual(unlabeled, []);
  assert.ok(requests.every((u) => u.startsWith(server.url)), `no external assets: ${requests}`);

  await page.fill('#name', 'Ann');
  await page.fill('#card_number', '4000 0000 0000 0002');
  await page.fill('#expiry', '12/30');
  await page.fill('#cvc', '123');
  await page.click('#pay');
  await page.waitForSelector('#error');
  assert.equal(await page.locator('#error').innerText(), 'Your card was declined.');
  assert.equal(await page.locator('#name').inputValue(), 'Ann', 'the form keeps what was typed');

  await page.fill('#card_number', '4242 4242 4242 4242');
  await page.fill('#cvc', '123');
  await Promise.all([page.waitForURL(successUrl), page.click('#pay')]);
  assert.equal(page.url(), successUrl);

  const subs = await api('GET', '/subscriptions/?customer_id=browser-1');
  assert.equal(subs.count, 1);
  assert.equal(subs.results[0].status, 'active');
  const customer = await api('GET', '/customers/browser-1/');
  assert.equal(customer.name, 'Ann');

  // Back on the page: it says the payment is complete.
  await page.goto(session.checkoutUrl);
  assert.equal(await page.locator('h1').innerText(), 'Payment complete');
  await page.close();
});

test('a discount code on the hosted page', async () => {
  await api('POST', '/discounts/', { code: 'LAUNCH', percentage: 20, duration: 'ONCE' });
  const successUrl = `${server.url}/healthz?landed=discount`;
  const session = await api('POST', '/checkout/', {
    planIdentifier: 'pro', chargePeriod: 'MONTHLY', customerId: 'browser-2', successUrl, discountsEnabled: true,
  });
  const page = await browser.newPage();
  await page.goto(`${session.checkoutUrl}?discount_code=NOPE`);
  assert.equal(await page.locator('#discount_code').inputValue(), 'NOPE', 'the query pre-fills the field');
  assert.equal(await page.locator('#error').innerText(), 'This discount code is invalid or has expired.');
  assert.equal(await page.locator('#discount_code').getAttribute('aria-invalid'), 'true');
  assert.match(await page.locator('#total').innerText(), /\$49\.00/);

  await page.fill('#discount_code', 'launch');
  await Promise.all([page.waitForURL(/discount_code=launch/), page.click('#apply')]);
  assert.equal(await page.locator('#error').count(), 0);
  assert.match(await page.locator('#discount').innerText(), /LAUNCH applied/);
  assert.match(await page.locator('#total').innerText(), /\$39\.20/);
  assert.match(await page.locator('#pay').innerText(), /\$39\.20/);

  await page.fill('#email', 'bo@example.com');
  await page.fill('#card_number', '4242 4242 4242 4242');
  await page.fill('#expiry', '12/30');
  await page.fill('#cvc', '123');
  // Enter in the payment form pays (the code has its own form).
  await Promise.all([page.waitForURL(successUrl), page.press('#cvc', 'Enter')]);
  const orders = await api('GET', '/orders/');
  const order = orders.results.find((o) => o.customer.customerId === 'browser-2');
  assert.equal(order.amountDiscount, '9.80');
  assert.equal(order.amountTotal, '39.20');
  await page.close();
});
