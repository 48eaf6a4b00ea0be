'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { formatBytes } = require('../lib/text');

test('MB and GB', () => {
  assert.equal(formatBytes(1024 ** 2), '1.0 MB');
  assert.equal(formatBytes(1.5 * 1024 ** 2), '1.5 MB');
  assert.equal(formatBytes(1024 ** 3), '1.0 GB');
  assert.equal(formatBytes(5 * 1024 ** 3), '5.0 GB');
  assert.equal(formatBytes(1024 ** 2 - 1024), '1023.0 KB');
});

test('B and KB unchanged', () => {
  assert.equal(formatBytes(512), '512 B');
  assert.equal(formatBytes(1536), '1.5 KB');
});
