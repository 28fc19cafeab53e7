// Webhooks our server delivers, verified by the official Node SDK's
// `validateEvent`, unchanged: a receiver on this machine gets the events of
// a customer, a checkout, an upgrade, a cancellation and a test event, and
// each verifies with the endpoint's secret (and fails with another).
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const { Kelviq, validateEvent, WebhookVerificationError } = require('@kelviq/node-sdk');
const { startServer, api } = require('./server');

/** A receiver that keeps each request's headers and raw body. */
async function startReceiver() {
  const got = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      got.push({ headers: req.headers, body: Buffer.concat(chunks) });
      res.writeHead(200).end();
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { got, url: `http://127.0.0.1:${server.address().port}/hook`, close: () => server.close() };
}

for (const backend of ['sqlite', 'postgres']) {
  test(`deliveries verify with the Node SDK's validateEvent (${backend})`, async (t) => {
    const server = await startServer(backend);
    t.after(() => server.stop());
    const receiver = await startReceiver();
    t.after(() => receiver.close());
    const endpoint = await api(server, 'POST', '/webhooks/endpoints/', { url: receiver.url, description: 'node' });
    await api(server, 'POST', '/catalog/products/', { name: 'Suite', identifier: 'suite', taxCode: 'saas' });
    for (const [id, amount] of [['basic', 10], ['pro', 30]]) {
      await api(server, 'POST', '/catalog/plans/', { name: id, identifier: id, product: 'suite' });
      await api(server, 'POST', `/catalog/plans/${id}/prices/bulk/`, {
        prices: [{ priceType: 'PAID', currency: 'USD', chargeCatalogPrice: [{ charges: [{ chargePeriod: 'MONTHLY', priceData: { amount } }] }] }],
      });
      await api(server, 'POST', `/catalog/plans/${id}/publish/`, {});
    }
    const client = new Kelviq({ accessToken: server.serverKey, baseUrl: server.url, edgeApiUrl: server.url, logger: false });
    await client.customers.create({ customerId: 'node-hook', email: 'hook@example.com', name: 'Hook' });
    const session = await client.checkout.createSession({
      planIdentifier: 'basic', chargePeriod: 'MONTHLY', customerId: 'node-hook', successUrl: 'https://app.example.com/ok',
    });
    await api(server, 'POST', `/checkout/sessions/${session.checkoutSessionId}/complete/`, { card: '4242424242424242' });
    const id = (await api(server, 'GET', '/subscriptions/?customer_id=node-hook')).results[0].id;
    await client.subscriptions.update({ subscriptionId: id, planIdentifier: 'pro', chargePeriod: 'MONTHLY' });
    await client.subscriptions.cancel({ subscriptionId: id, cancellationType: 'IMMEDIATE' });
    await api(server, 'POST', `/webhooks/endpoints/${endpoint.id}/test/`, {});

    const events = await api(server, 'GET', '/webhooks/events/?page_size=100');
    const wanted = new Map(events.results.map((e) => [e.id, e.type]));
    const deadline = Date.now() + 30000;
    let delivered = new Map();
    while (Date.now() < deadline) {
      delivered = new Map();
      for (const { headers, body } of receiver.got) {
        const event = validateEvent(body, headers, endpoint.secret);
        assert.equal(headers['webhook-id'], event.id);
        delivered.set(event.id, event);
      }
      if ([...wanted.keys()].every((k) => delivered.has(k))) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    for (const [eventId, type] of wanted) {
      assert.ok(delivered.has(eventId), `${type} ${eventId} was not delivered`);
      assert.equal(delivered.get(eventId).type, type);
    }
    const types = new Set([...delivered.values()].map((e) => e.type));
    for (const type of ['customer.created', 'checkout.completed', 'subscription.created', 'order.created',
      'invoice.paid', 'subscription.plan_changed', 'subscription.cancelled', 'webhook.test']) {
      assert.ok(types.has(type), `${type} missing from ${[...types]}`);
    }
    const { headers, body } = receiver.got[0];
    assert.throws(() => validateEvent(body, headers, 'kq_whsec_someone_else'),
      (e) => e instanceof WebhookVerificationError && e.message === 'Webhook signature verification failed.');
    assert.throws(() => validateEvent(body.toString().replace('"', "'"), headers, endpoint.secret), WebhookVerificationError);
  });
}
