'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { isLeapYear } = require('../lib/numbers');

test('centuries', () => {
  assert.equal(isLeapYear(1900), false);
  assert.equal(isLeapYear(2100), false);
  assert.equal(isLeapYear(2000), true);
  assert.equal(isLeapYear(1600), true);
});

test('other years', () => {
  assert.equal(isLeapYear(2024), true);
  assert.equal(isLeapYear(2023), false);
});
