// The official Node SDK's license and portal modules, unchanged, against our server:
// activate, validate and deactivate, and their errors (it sends snake_case).
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { Kelviq, AuthenticationError, NotFoundError } = require('@kelviq/node-sdk');
const { startServer, api } = require('./server');

for (const backend of ['sqlite', 'postgres']) {
  test(`licenses through the Node SDK (${backend})`, async (t) => {
    const server = await startServer(backend);
    t.after(() => server.stop());
    await api(server, 'POST', '/catalog/products/', { name: 'Desk App', identifier: 'desk-app', taxCode: 'software' });
    await api(server, 'POST', '/catalog/plans/', {
      name: 'Desk', identifier: 'desk', product: 'desk-app',
      license: { enabled: true, activationLimitEnabled: true, activationLimit: 1 },
    });
    await api(server, 'POST', '/catalog/plans/desk/prices/bulk/', {
      prices: [{ priceType: 'PAID', currency: 'USD', chargeCatalogPrice: [{ charges: [{ chargePeriod: 'MONTHLY', priceData: { amount: 15 } }] }] }],
    });
    await api(server, 'POST', '/catalog/plans/desk/publish/', {});
    const client = new Kelviq({ accessToken: server.serverKey, baseUrl: server.url, edgeApiUrl: server.url, logger: false });
    const session = await client.checkout.createSession({
      planIdentifier: 'desk', chargePeriod: 'MONTHLY', customerId: 'node-lic', successUrl: 'https://app.example.com/ok',
    });
    await api(server, 'POST', `/checkout/sessions/${session.checkoutSessionId}/complete/`, { card: '4242424242424242', email: 'n@example.com' });
    const subs = await api(server, 'GET', '/subscriptions/?customer_id=node-lic');
    const key = subs.results[0].license[0].licenseKey;

    const activated = await client.license.activate({ licenseKey: key, customerId: 'node-lic', instanceName: 'mac', metadata: { fingerprint: 'fp-node' } });
    assert.equal(activated.license.licenseKey, key);
    assert.equal(activated.license.activationUsage, 1);
    assert.equal(activated.license.plan.product.identifier, 'desk-app');
    const verdict = await client.license.validate({ licenseKey: key, instanceId: activated.instanceId });
    assert.equal(verdict.valid, true);
    assert.equal(verdict.code, 'VALID');
    assert.deepEqual(verdict.metadata, { fingerprint: 'fp-node' });

    await assert.rejects(client.license.activate({ licenseKey: key }), (e) => {
      assert.ok(e instanceof AuthenticationError);
      assert.equal(e.statusCode, 403);
      assert.deepEqual(e.details, { error: 'Activation limit reached (1/1).' });
      return true;
    });
    const done = await client.license.deactivate({ licenseKey: key, instanceId: activated.instanceId });
    assert.equal(done.message, 'License instance deactivated successfully.');
    await assert.rejects(client.license.validate({ licenseKey: key, instanceId: activated.instanceId }), (e) => {
      assert.ok(e instanceof NotFoundError);
      assert.equal(e.details.code, 'INSTANCE_NOT_FOUND');
      return true;
    });
    await assert.rejects(client.license.validate({ licenseKey: 'LIC-NOPE' }), NotFoundError);
  });
}

for (const backend of ['sqlite', 'postgres']) {
  test(`a portal session through the Node SDK (${backend})`, async (t) => {
    const server = await startServer(backend);
    t.after(() => server.stop());
    await api(server, 'POST', '/customers/', { customerId: 'node-portal', email: 'np@example.com' });
    const client = new Kelviq({ accessToken: server.serverKey, baseUrl: server.url, edgeApiUrl: server.url, logger: false });
    const session = await client.portal.createSession({ customerId: 'node-portal' });
    assert.match(session.token, /^cpt-[0-9a-f-]{36}:[0-9a-f-]{36}$/);
    assert.equal(session.email, 'np@example.com');
    assert.equal(session.customerPortalUrl, `${server.url}/portal/demo/`);
    const opened = await fetch(`${session.customerPortalUrl}?token=${session.token}`, { redirect: 'manual' });
    assert.equal(opened.status, 303);
    assert.match(opened.headers.get('set-cookie'), /HttpOnly/);
  });
}
