'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { deepEqual } = require('../lib/misc');

test('plain objects', () => {
  assert.equal(deepEqual({ a: 1, b: [1, { c: 2 }] }, { b: [1, { c: 2 }], a: 1 }), true);
  assert.equal(deepEqual({}, {}), true);
  assert.equal(deepEqual({ a: 1 }, { a: 2 }), false);
  assert.equal(deepEqual({ a: 1 }, { a: 1, b: 2 }), false);
  assert.equal(deepEqual({ a: 1, b: 2 }, { a: 1 }), false);
  assert.equal(deepEqual({ a: undefined }, { b: undefined }), false);
});

test('mixed kinds are not equal', () => {
  assert.equal(deepEqual({}, []), false);
  assert.equal(deepEqual(null, {}), false);
  assert.equal(deepEqual({ 0: 1 }, [1]), false);
});

test('arrays and primitives unchanged', () => {
  assert.equal(deepEqual([1, [2, 3]], [1, [2, 3]]), true);
  assert.equal(deepEqual([1, 2], [1, 3]), false);
});
