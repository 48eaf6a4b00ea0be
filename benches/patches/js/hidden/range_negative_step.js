'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { range } = require('../lib/numbers');

test('a negative step counts down', () => {
  assert.deepEqual(range(5, 0, -2), [5, 3, 1]);
  assert.deepEqual(range(3, 0, -1), [3, 2, 1]);
  assert.deepEqual(range(0, 3, -1), []);
});

test('a zero step is a RangeError', () => {
  assert.throws(() => range(0, 5, 0), RangeError);
});

test('counting up is unchanged', () => {
  assert.deepEqual(range(0, 3), [0, 1, 2]);
  assert.deepEqual(range(1, 7, 2), [1, 3, 5]);
  assert.deepEqual(range(5, 0), []);
});
