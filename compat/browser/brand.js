// Gives the demo seller a look for the browser tests: a display name, a
// logo uploaded through /media/, a brand colour, a support address and
// legal links (PATCH /storefront-settings/).
'use strict';
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');

const SHOTS = path.join(__dirname, 'screenshots');

// A 48×48 PNG: a teal disc.
const LOGO = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAADAAAAAwCAYAAABXAvmHAAAAhElEQVR42u3ZwRHAIAhEUTuw0xzTfpyUoILA+nfG+76bQGuEEPKnv883+8oWTwGxKB4G8Sh/BOFZ3B1ysrw5IqK8KaI0ILL8NiJD+S1EaUCm8kuI0oCM5acQAAAAAAAAAAAANwP4TjPUMFKKbCVYbN2+XmQ7LXcfkLnQSNzIZK6UhBTPANV3dnIITwegAAAAAElFTkSuQmCC', 'base64');

async function brand(server) {
  const auth = { Authorization: `Bearer ${server.serverKey}`, 'Content-Type': 'application/json' };
  const presign = await fetch(`${server.url}/api/v1/media/`, {
    method: 'POST', headers: auth, body: JSON.stringify({ fileName: 'logo.png', fileType: 'image/png' }),
  });
  const form = await presign.json();
  assert.equal(presign.status, 200, JSON.stringify(form));
  const body = new FormData();
  for (const [k, v] of Object.entries(form.fields)) body.append(k, v);
  body.append('file', new Blob([LOGO], { type: 'image/png' }), 'logo.png');
  const up = await fetch(form.url, { method: 'POST', body });
  assert.equal(up.status, 204);
  const res = await fetch(`${server.url}/api/v1/storefront-settings/`, {
    method: 'PATCH', headers: auth,
    body: JSON.stringify({
      displayName: 'Northwind Studio', logo: form.fileKey, brandColor: '#0f766e', supportEmail: 'help@northwind.example',
      termsUrl: 'https://northwind.example/terms', privacyUrl: 'https://northwind.example/privacy',
    }),
  });
  const settings = await res.json();
  assert.equal(res.status, 200, JSON.stringify(settings));
  return settings;
}

/// Whether the page is wider than the window (it should never be, from 360 px up).
async function overflows(page) {
  return page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
}

/// Screenshots at a phone's and a desktop's width for review
/// (compat/browser/screenshots/); the page never scrolls sideways, from 360 px.
async function shoot(page, name) {
  fs.mkdirSync(SHOTS, { recursive: true });
  for (const width of [360, 375, 1280]) {
    await page.setViewportSize({ width, height: 900 });
    assert.equal(await overflows(page), false, `${name} fits ${width} px`);
    if (width !== 360) await page.screenshot({ path: path.join(SHOTS, `${name}-${width}.png`), fullPage: true });
  }
}

module.exports = { brand, overflows, shoot };
