'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { sum } = require('../lib/numbers');

test('null and undefined are skipped', () => {
  assert.equal(sum([1, null, 2, undefined, 3]), 6);
  assert.equal(sum([null]), 0);
  assert.equal(sum([undefined, undefined]), 0);
});

test('zeros and negatives still count', () => {
  assert.equal(sum([0, -2, 5]), 3);
  assert.equal(sum([]), 0);
});
