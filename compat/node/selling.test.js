// The official Node SDK's checkout and subscriptions modules, unchanged,
// against our server (it sends every body key in snake_case and the legacy
// `probation_behaviour` values).
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { Kelviq, InvalidRequestError } = require('@kelviq/node-sdk');
const { startServer, api } = require('./server');

for (const backend of ['sqlite', 'postgres']) {
  test(`checkout and subscriptions through the Node SDK (${backend})`, async (t) => {
    const server = await startServer(backend);
    t.after(() => server.stop());
    await api(server, 'POST', '/catalog/products/', { name: 'Suite', identifier: 'suite', taxCode: 'saas' });
    for (const [id, amount] of [['basic', 10], ['pro', 30]]) {
      await api(server, 'POST', '/catalog/plans/', { name: id, identifier: id, product: 'suite' });
      await api(server, 'POST', `/catalog/plans/${id}/prices/bulk/`, {
        prices: [{ priceType: 'PAID', currency: 'USD', chargeCatalogPrice: [{ charges: [{ chargePeriod: 'MONTHLY', priceData: { amount } }] }] }],
      });
      await api(server, 'POST', `/catalog/plans/${id}/publish/`, {});
    }
    const client = new Kelviq({ accessToken: server.serverKey, baseUrl: server.url, edgeApiUrl: server.url, logger: false });

    const session = await client.checkout.createSession({
      planIdentifier: 'basic', chargePeriod: 'MONTHLY', customerId: 'node-buyer', successUrl: 'https://app.example.com/ok',
      metadata: { campaignId: 'node', Nested: { KeepMe: true } }, defaultBillingCountry: 'GB', lockEmail: false,
    });
    assert.match(session.checkoutSessionId, /^cs_/);
    assert.ok(session.checkoutUrl.endsWith(`/checkout/${session.checkoutSessionId}/`));
    await api(server, 'POST', `/checkout/sessions/${session.checkoutSessionId}/complete/`, { card: '4242424242424242', email: 'n@example.com' });
    const detail = await api(server, 'GET', `/checkout/sessions/${session.checkoutSessionId}/`);
    assert.deepEqual(detail.metadata, { campaignId: 'node', Nested: { KeepMe: true } }, 'metadata kept verbatim through snake_case');
    const subs = await api(server, 'GET', '/subscriptions/?customer_id=node-buyer');
    const id = subs.results[0].id;

    const updated = await client.subscriptions.update({ subscriptionId: id, planIdentifier: 'pro', chargePeriod: 'MONTHLY', probationBehaviour: 'IMMEDIATE_CHARGE' });
    assert.equal(updated.subscriptionId, id);
    assert.equal((await api(server, 'GET', `/subscriptions/${id}/`)).plan.identifier, 'pro');

    const cancelled = await client.subscriptions.cancel({ subscriptionId: id, cancellationType: 'CURRENT_PERIOD_ENDS' });
    assert.equal(cancelled.message, 'Subscription cancellation processed successfully.');
    const after = await api(server, 'GET', `/subscriptions/${id}/`);
    assert.equal(after.status, 'active');
    assert.equal(after.endDate, after.billingPeriodEndTime.slice(0, 10), 'ends with the period');

    await assert.rejects(
      client.checkout.createSession({ planIdentifier: 'nope', chargePeriod: 'MONTHLY', successUrl: 'https://x.example/' }),
      (e) => e instanceof InvalidRequestError && e.statusCode === 400,
    );
  });
}
