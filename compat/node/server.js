// Starts the real `kelviq` binary for the official Node SDK to talk to:
// SQLite in a temporary data directory, or a fresh PostgreSQL database.
'use strict';
const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const readline = require('node:readline');
const crypto = require('node:crypto');
const assert = require('node:assert/strict');

const REPO = path.resolve(__dirname, '..', '..');
const BIN = process.env.KELVIQ_BIN || path.join(REPO, 'target', 'debug', 'kelviq');
const ADMIN_URL = process.env.KELVIQ_TEST_POSTGRES_URL || 'postgres://postgres@127.0.0.1:5432/postgres';

function psql(sql) {
  execFileSync('psql', [ADMIN_URL, '-v', 'ON_ERROR_STOP=1', '-qc', sql], { stdio: 'pipe' });
}

async function startServer(backend, extraEnv = {}) {
  // The webhook tests' receiver listens on this machine.
  const env = { ...process.env, KELVIQ_LOG: 'warn', KELVIQ_WEBHOOK_ALLOW_SUBNETS: '127.0.0.0/8', ...extraEnv };
  delete env.DATABASE_URL;
  delete env.KELVIQ_DATABASE_URL;
  delete env.KELVIQ_BIN;
  delete env.KELVIQ_CHROMIUM;
  let cleanup = () => {};
  if (backend === 'sqlite') {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kelviq-node-'));
    env.KELVIQ_DATA_DIR = dir;
    cleanup = () => fs.rmSync(dir, { recursive: true, force: true });
  } else {
    const name = `kq_node_${crypto.randomUUID().replace(/-/g, '')}`;
    psql(`CREATE DATABASE ${name}`);
    const url = new URL(ADMIN_URL);
    url.pathname = `/${name}`;
    env.DATABASE_URL = url.toString();
    cleanup = () => psql(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  }
  const child = spawn(BIN, ['serve', '--listen', '127.0.0.1:0'], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  const server = { child, serverKey: null, clientKey: null, url: null, env };
  const lines = readline.createInterface({ input: child.stdout });
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('kelviq serve did not start')), 30000);
    lines.on('line', (line) => {
      if (line.startsWith('sandbox server key: ')) server.serverKey = line.split(': ')[1];
      else if (line.startsWith('sandbox client key: ')) server.clientKey = line.split(': ')[1];
      else if (line.startsWith('kelviq listening on ')) {
        server.url = line.split(' ')[3];
        clearTimeout(timer);
        resolve();
      }
    });
    child.on('exit', (code) => reject(new Error(`kelviq exited with ${code}`)));
  });
  server.stop = async () => {
    const exited = new Promise((resolve) => child.on('exit', resolve));
    child.kill('SIGTERM');
    await exited;
    cleanup();
  };
  return server;
}

/** A call to the server's API with its server key; fails the test unless it is a 2xx. */
async function api(server, method, path, body) {
  const res = await fetch(`${server.url}/api/v1${path}`, {
    method,
    headers: { Authorization: `Bearer ${server.serverKey}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await res.json();
  assert.ok(res.status < 300, `${method} ${path} → ${res.status} ${JSON.stringify(json)}`);
  return json;
}

module.exports = { startServer, api };
