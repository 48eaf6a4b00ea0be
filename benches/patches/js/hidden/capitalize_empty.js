'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { capitalize } = require('../lib/text');

test('empty and missing inputs', () => {
  assert.equal(capitalize(''), '');
  assert.equal(capitalize(null), '');
  assert.equal(capitalize(undefined), '');
  assert.equal(capitalize(), '');
});

test('words', () => {
  assert.equal(capitalize('hello'), 'Hello');
  assert.equal(capitalize('x'), 'X');
});
