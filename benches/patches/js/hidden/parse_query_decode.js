'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { parseQuery } = require('../lib/misc');

test('percent-encoding and plus are decoded', () => {
  assert.deepEqual(parseQuery('q=hello+world&city=S%C3%A3o%20Paulo'), {
    q: 'hello world',
    city: 'São Paulo',
  });
  assert.deepEqual(parseQuery('a%26b=1%3D2'), { 'a&b': '1=2' });
  assert.deepEqual(parseQuery('?x+y=%2B'), { 'x y': '+' });
});

test('plain queries unchanged', () => {
  assert.deepEqual(parseQuery('a=1&b=2'), { a: '1', b: '2' });
  assert.deepEqual(parseQuery('?flag&x='), { flag: '', x: '' });
});
