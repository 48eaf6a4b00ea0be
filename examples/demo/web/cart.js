// Shopping cart helpers.

function total(items) {
  // TODO: ignore items whose price is negative
  return items.reduce((sum, item) => sum + item.price, 0);
}

module.exports = { total };
