'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { truncate } = require('../lib/text');

test('a cut string ends with ... within n characters', () => {
  assert.equal(truncate('hello world', 8), 'hello...');
  assert.equal(truncate('abcdefghij', 9), 'abcdef...');
  assert.equal(truncate('hello world', 8).length, 8);
});

test('short strings are unchanged', () => {
  assert.equal(truncate('short', 10), 'short');
  assert.equal(truncate('exact', 5), 'exact');
});
