'use strict';
// The behaviour that exists today.
const test = require('node:test');
const assert = require('node:assert/strict');
const { clamp, sum, range, isLeapYear } = require('../lib/numbers');
const { capitalize, truncate, formatBytes } = require('../lib/text');
const { parseQuery, deepEqual, compareVersions } = require('../lib/misc');

test('clamp', () => {
  assert.equal(clamp(5, 0, 10), 5);
  assert.equal(clamp(-1, 0, 10), 0);
  assert.equal(clamp(11, 0, 10), 10);
});

test('sum', () => {
  assert.equal(sum([1, 2, 3]), 6);
  assert.equal(sum([]), 0);
});

test('range counts up', () => {
  assert.deepEqual(range(0, 3), [0, 1, 2]);
  assert.deepEqual(range(1, 7, 2), [1, 3, 5]);
  assert.deepEqual(range(3, 3), []);
});

test('isLeapYear', () => {
  assert.equal(isLeapYear(2024), true);
  assert.equal(isLeapYear(2023), false);
});

test('capitalize', () => {
  assert.equal(capitalize('hello'), 'Hello');
  assert.equal(capitalize('a'), 'A');
});

test('truncate keeps short strings', () => {
  assert.equal(truncate('short', 10), 'short');
  assert.equal(truncate('exact', 5), 'exact');
});

test('formatBytes', () => {
  assert.equal(formatBytes(0), '0 B');
  assert.equal(formatBytes(512), '512 B');
  assert.equal(formatBytes(1536), '1.5 KB');
  assert.equal(formatBytes(1024), '1.0 KB');
});

test('parseQuery', () => {
  assert.deepEqual(parseQuery('a=1&b=2'), { a: '1', b: '2' });
  assert.deepEqual(parseQuery('?flag&x='), { flag: '', x: '' });
  assert.deepEqual(parseQuery(''), {});
});

test('deepEqual on primitives and arrays', () => {
  assert.equal(deepEqual(1, 1), true);
  assert.equal(deepEqual([1, [2, 3]], [1, [2, 3]]), true);
  assert.equal(deepEqual([1, 2], [1, 3]), false);
  assert.equal(deepEqual('a', 'b'), false);
});

test('compareVersions on simple versions', () => {
  assert.equal(compareVersions('1.2.3', '1.2.3'), 0);
  assert.equal(compareVersions('1.2.3', '1.2.4'), -1);
  assert.equal(compareVersions('2.0.0', '1.9.9'), 1);
});
