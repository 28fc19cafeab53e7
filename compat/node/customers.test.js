// The official Node SDK's customers module, unchanged, against our server.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { Kelviq, InvalidRequestError, NotFoundError, AuthenticationError } = require('@kelviq/node-sdk');
const { startServer } = require('./server');

for (const backend of ['sqlite', 'postgres']) {
  test(`customers through the Node SDK (${backend})`, async (t) => {
    const server = await startServer(backend);
    t.after(() => server.stop());
    const client = new Kelviq({ accessToken: server.serverKey, baseUrl: server.url, edgeApiUrl: server.url, logger: false });
    const id = `node-${crypto.randomUUID().slice(0, 8)}`;

    await t.test('create, retrieve, update, list, archive', async () => {
      const created = await client.customers.create({ customerId: id, email: 'node@example.com', name: 'Node', metadata: { someKey: { innerKey: 1 } } });
      assert.equal(created.customerId, id);
      assert.deepEqual(created.metadata, { someKey: { innerKey: 1 } }, 'metadata keys survive the snake_case body');
      assert.ok(created.createdOn.endsWith('Z'));
      const fetched = await client.customers.retrieve({ customerId: id });
      assert.equal(fetched.id, created.id);
      const updated = await client.customers.update({ customerId: id, name: 'Node 2' });
      assert.equal(updated.name, 'Node 2');
      assert.equal(updated.email, 'node@example.com');
      const page = await client.customers.list({ page: 1, pageSize: 10 });
      assert.ok(page.count >= 1);
      assert.equal(page.results[0].customerId, id);
      await client.customers.archive({ customerId: id });
      await assert.rejects(client.customers.retrieve({ customerId: id }), (e) => e instanceof NotFoundError && e.statusCode === 404);
    });

    await t.test('errors map to the SDK exceptions', async () => {
      await assert.rejects(client.customers.create({ customerId: id, email: 'again@example.com' }),
        (e) => e instanceof InvalidRequestError && e.statusCode === 400 && 'customerId' in e.details);
      await assert.rejects(client.customers.create({ customerId: `${id}-x`, email: 'not an email' }),
        (e) => e instanceof InvalidRequestError && e.details.email[0] === 'Enter a valid email address.');
      const wrong = new Kelviq({ accessToken: 'sk_test_nope', baseUrl: server.url, edgeApiUrl: server.url, logger: false });
      await assert.rejects(wrong.customers.list(), (e) => e instanceof AuthenticationError && e.statusCode === 401);
      const publicKey = new Kelviq({ accessToken: server.clientKey, baseUrl: server.url, edgeApiUrl: server.url, logger: false });
      await assert.rejects(publicKey.customers.create({ customerId: `${id}-c` }), (e) => e instanceof AuthenticationError && e.statusCode === 403);
    });
  });
}
