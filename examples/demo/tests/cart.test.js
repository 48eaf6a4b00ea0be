// What web/cart.js does today, and must keep doing.
const test = require('node:test');
const assert = require('node:assert');
const { total } = require('../web/cart.js');

test('sums the prices', () => {
  assert.strictEqual(total([{ price: 2 }, { price: 3 }]), 5);
});

test('an empty cart costs nothing', () => {
  assert.strictEqual(total([]), 0);
});
