'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { compareVersions } = require('../lib/misc');

test('numeric parts', () => {
  assert.equal(compareVersions('1.10', '1.9'), 1);
  assert.equal(compareVersions('1.9', '1.10'), -1);
  assert.equal(compareVersions('10.0.0', '9.9.9'), 1);
  assert.equal(compareVersions('1.5', '1.2'), 1);
  assert.equal(compareVersions('2.0', '4.0'), -1);
});

test('missing parts are 0', () => {
  assert.equal(compareVersions('1.2', '1.2.0'), 0);
  assert.equal(compareVersions('1.2.0.0', '1.2'), 0);
  assert.equal(compareVersions('1.2', '1.2.1'), -1);
  assert.equal(compareVersions('1.2.1', '1.2'), 1);
});

test('simple versions unchanged', () => {
  assert.equal(compareVersions('1.2.3', '1.2.3'), 0);
  assert.equal(compareVersions('1.2.3', '1.2.4'), -1);
});
