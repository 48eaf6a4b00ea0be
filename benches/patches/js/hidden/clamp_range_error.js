'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { clamp } = require('../lib/numbers');

test('lo greater than hi is a RangeError', () => {
  assert.throws(() => clamp(5, 10, 0), RangeError);
  assert.throws(() => clamp(0, 1, -1), RangeError);
});

test('clamping is unchanged', () => {
  assert.equal(clamp(5, 0, 10), 5);
  assert.equal(clamp(-1, 0, 10), 0);
  assert.equal(clamp(11, 0, 10), 10);
  assert.equal(clamp(3, 3, 3), 3);
});
