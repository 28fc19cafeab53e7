// The customer portal in real headless Chromium: open the signed link, see
// the subscription, cancel at period end and undo, deactivate a licence
// instance, download an invoice; each change is seen through the API at
// once. Signing in by a code e-mailed to a real SMTP receiver. An
// expired link shows a clear page with a 401. A plan change previewed
// with the exact amounts of update/preview/, then confirmed. Pages carry
// the seller's look and fit from 360 px wide. axe-core finds no
// serious or critical violation; screenshots at 375 px and 1280 px are
// saved for review (compat/browser/screenshots/).
'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const { chromium } = require('playwright-core');
const { startServer } = require('../node/server.js');
const { brand, shoot } = require('./brand.js');

/// A real SMTP receiver (enough of RFC 5321 for a client to deliver to it): the messages' data.
function smtpReceiver() {
  const messages = [];
  const srv = net.createServer((socket) => {
    let buffer = '';
    let inData = false;
    let data = '';
    socket.write('220 receiver.test ESMTP\r\n');
    socket.on('data', (chunk) => {
      buffer += chunk.toString('utf8');
      let at;
      while ((at = buffer.indexOf('\r\n')) >= 0) {
        const line = buffer.slice(0, at);
        buffer = buffer.slice(at + 2);
        if (inData) {
          if (line === '.') {
            inData = false;
            messages.push(data);
            data = '';
            socket.write('250 OK: queued\r\n');
          } else data += `${line.startsWith('.') ? line.slice(1) : line}\n`;
          continue;
        }
        const verb = line.split(' ')[0].toUpperCase();
        if (verb === 'EHLO') socket.write('250-receiver.test\r\n250 8BITMIME\r\n');
        else if (verb === 'DATA') { inData = true; socket.write('354 End data with <CR><LF>.<CR><LF>\r\n'); }
        else if (verb === 'QUIT') { socket.end('221 Bye\r\n'); }
        else socket.write('250 OK\r\n');
      }
    });
  });
  return new Promise((resolve) => srv.listen(0, '127.0.0.1', () => resolve({ srv, messages, url: `smtp://127.0.0.1:${srv.address().port}` })));
}
let smtp;

const CHROMIUM = process.env.KELVIQ_CHROMIUM || '/usr/bin/chromium';
const AXE = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
let server;
let browser;

async function api(method, p, body) {
  const res = await fetch(`${server.url}/api/v1${p}`, {
    method,
    headers: { Authorization: `Bearer ${server.serverKey}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await res.json();
  return { status: res.status, json };
}

async function ok(method, p, body) {
  const { status, json } = await api(method, p, body);
  assert.ok(status < 300, `${method} ${p} → ${status} ${JSON.stringify(json)}`);
  return json;
}

/// Runs axe-core in the page: the serious and critical violations.
async function serious(page) {
  await page.addScriptTag({ content: AXE });
  const result = await page.evaluate(async () => await window.axe.run(document, { resultTypes: ['violations'] }));
  return result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${v.id}: ${v.help}`);
}


before(async () => {
  assert.ok(fs.existsSync(CHROMIUM), `Chromium is needed at ${CHROMIUM} (apt-get install chromium)`);
  smtp = await smtpReceiver();
  server = await startServer('sqlite', { KELVIQ_SMTP_URL: smtp.url });
  await ok('POST', '/catalog/products/', { name: 'Studio', identifier: 'studio', taxCode: 'software' });
  await ok('POST', '/catalog/plans/', {
    name: 'Studio Pro', identifier: 'studio-pro', product: 'studio',
    license: { enabled: true, activationLimitEnabled: true, activationLimit: 3 },
  });
  await ok('POST', '/catalog/plans/studio-pro/prices/bulk/', {
    prices: [{ priceType: 'PAID', currency: 'USD', chargeCatalogPrice: [{ charges: [{ chargePeriod: 'MONTHLY', priceData: { amount: 25 } }] }] }],
  });
  await ok('POST', '/catalog/plans/studio-pro/publish/', {});
  await ok('POST', '/catalog/plans/', { name: 'Studio Max', identifier: 'studio-max', product: 'studio' });
  await ok('POST', '/catalog/plans/studio-max/prices/bulk/', {
    prices: [{ priceType: 'PAID', currency: 'USD', chargeCatalogPrice: [{ charges: [{ chargePeriod: 'MONTHLY', priceData: { amount: 60 } }] }] }],
  });
  await ok('POST', '/catalog/plans/studio-max/publish/', {});
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
  if (smtp) smtp.srv.close();
});

test('the portal: subscription, cancel and undo, a device, an invoice', async () => {
  const session0 = await ok('POST', '/checkout/', {
    planIdentifier: 'studio-pro', chargePeriod: 'MONTHLY', customerId: 'portal-1', successUrl: `${server.url}/healthz`,
  });
  await ok('POST', `/checkout/sessions/${session0.checkoutSessionId}/complete/`, { card: '4242424242424242', email: 'pat@example.com' });
  const sub = (await ok('GET', '/subscriptions/?customer_id=portal-1')).results[0];
  const key = sub.license[0].licenseKey;
  const activated = await ok('POST', '/license/activate/', { licenseKey: key, instanceName: 'Studio Mac' });
  const session = await ok('POST', '/portal/session/', { customerId: 'portal-1' });

  // The pages forbid every script (CSP); axe-core is injected past it.
  const context = await browser.newContext({ acceptDownloads: true, bypassCSP: true });
  const page = await context.newPage();
  const requests = [];
  page.on('request', (r) => requests.push(r.url()));
  await page.goto(`${session.customerPortalUrl}?token=${session.token}`);
  assert.equal(new URL(page.url()).search, '', 'the token leaves the address bar');
  assert.equal(await page.locator('h1').innerText(), 'Your account');
  assert.match(await page.locator('#subs + .card, .card').first().innerText(), /Studio Pro/);
  assert.ok((await page.content()).includes(key));
  assert.ok(requests.every((u) => u.startsWith(server.url)), `no external assets: ${requests}`);
  assert.deepEqual(await serious(page), []);
  await shoot(page, 'portal');

  // Cancel at period end with a reason, then undo.
  await page.click('summary');
  await page.selectOption('select[name="reason"]', 'MISSING_FEATURES');
  await page.fill('input[name="comment"]', 'needs plugins');
  await page.click('button:has-text("Cancel at period end")');
  await page.waitForSelector('text=Your subscription will end at the end of the period.');
  let s = await ok('GET', `/subscriptions/${sub.id}/`);
  assert.equal(s.endDate, sub.billingPeriodEndTime.slice(0, 10));
  assert.equal(s.cancellationFeedback, 'MISSING_FEATURES');
  await page.click('button:has-text("Keep my subscription")');
  await page.waitForSelector('text=Your subscription will renew as before.');
  s = await ok('GET', `/subscriptions/${sub.id}/`);
  assert.equal(s.endDate, null);

  // Deactivate the device.
  await page.click('button[aria-label="Deactivate Studio Mac"]');
  await page.waitForSelector('text=The device was deactivated');
  const v = await api('POST', '/license/validate/', { licenseKey: key, instanceId: activated.instanceId });
  assert.equal(v.status, 404);
  assert.equal(v.json.code, 'INSTANCE_NOT_FOUND');

  // Download the invoice.
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('a:has-text("INV-")')]);
  const file = await download.path();
  assert.equal(fs.readFileSync(file).subarray(0, 4).toString(), '%PDF');
  await context.close();
});

test('an expired or unknown link shows a clear page with a 401', async () => {
  const context = await browser.newContext({ bypassCSP: true });
  const page = await context.newPage();
  const res = await page.goto(`${server.url}/portal/demo/?token=cpt-00000000-0000-0000-0000-000000000000:00000000-0000-0000-0000-000000000000`);
  assert.equal(res.status(), 401);
  assert.equal(await page.locator('h1').innerText(), 'This link has expired');
  assert.deepEqual(await serious(page), []);
  await shoot(page, 'portal-expired');
  await context.close();
});

test('sign in by a code sent by e-mail', async () => {
  await ok('POST', '/customers/', { customerId: 'portal-mail', email: 'mia@example.com', name: 'Mia' });
  const context = await browser.newContext({ bypassCSP: true });
  const page = await context.newPage();
  await page.goto(`${server.url}/portal/demo/sign-in?mode=test`);
  assert.deepEqual(await serious(page), []);
  await page.fill('#email', 'mia@example.com');
  await page.click('#send');
  await page.waitForSelector('#code');
  let message;
  for (let i = 0; i < 100 && !message; i += 1) {
    message = smtp.messages.find((m) => m.includes('mia@example.com'));
    if (!message) await new Promise((r) => setTimeout(r, 50));
  }
  assert.ok(message, 'the code arrived at the SMTP receiver');
  const code = /Subject: (\d{6}) is your/.exec(message)[1];
  await page.fill('#code', code);
  await page.click('#verify');
  await page.waitForSelector('text=Your account');
  assert.match(await page.locator('main').innerText(), /Signed in as mia@example\.com/);
  await shoot(page, 'portal-sign-in-done');
  await context.close();
});

test('change plan: the preview shows the API\'s amounts, then the change is made', async () => {
  const started = await ok('POST', '/checkout/', {
    planIdentifier: 'studio-pro', chargePeriod: 'MONTHLY', customerId: 'portal-change', successUrl: `${server.url}/healthz`,
  });
  await ok('POST', `/checkout/sessions/${started.checkoutSessionId}/complete/`, { card: '4242424242424242', email: 'cy@example.com' });
  const sub = (await ok('GET', '/subscriptions/?customer_id=portal-change')).results[0];
  const session = await ok('POST', '/portal/session/', { customerId: 'portal-change' });
  const context = await browser.newContext({ bypassCSP: true });
  const page = await context.newPage();
  await page.goto(`${session.customerPortalUrl}?token=${session.token}`);
  assert.equal(await page.locator('.seller').innerText(), 'Northwind Studio');
  await page.click('a:has-text("Change plan")');
  await page.waitForSelector('legend:has-text("Plan")');
  await page.check('label:has-text("Studio Max")');
  await page.click('button:has-text("Preview the change")');
  await page.waitForSelector('#charge-now');
  const preview = await ok('POST', `/subscriptions/${sub.id}/update/preview/`, { planIdentifier: 'studio-max', chargePeriod: 'MONTHLY' });
  const dollars = (units) => `$${Math.floor(units / 100)}.${String(units % 100).padStart(2, '0')} USD`;
  assert.equal(await page.locator('#charge-now').innerText(), dollars(preview.amountChargedImmediatelyUnits));
  assert.equal(await page.locator('#recurring').innerText(), dollars(preview.recurringAmountUnits));
  assert.deepEqual(await serious(page), []);
  await shoot(page, 'portal-change');
  await page.click('button:has-text("Confirm the change")');
  await page.waitForSelector('text=Your plan was changed.');
  const after = await ok('GET', `/subscriptions/${sub.id}/`);
  assert.equal(after.plan.identifier, 'studio-max');
  const orders = (await ok('GET', '/orders/?page_size=100')).results.filter((o) => o.customer.customerId === 'portal-change');
  assert.ok(orders.some((o) => o.amountTotalUnits === preview.amountChargedImmediatelyUnits), 'the previewed amount was charged');
  await context.close();
});
