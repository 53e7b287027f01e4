//! [`Prices`]: the generator's prices, `round(10^(6u) · 100)` for a uniform draw `u`
//! (`gen_nexmark.py`'s `next_price`), equal to the C library's `pow` result but about
//! four times cheaper.
//!
//! The script computes `int(10 ** (u * 6.0) * 100.0 + 0.5)`, i.e. `pow(10, y)` of the C
//! library, × 100, + 0.5, truncated. A bid needs one price, an auction two, and `pow`
//! was a tenth of the generator's instructions. [`Prices::price`] estimates
//! `10^y · 100 + 0.5` from a table of `10^(j/64)` (`j` = 0..=384, each computed once
//! with `pow`) and a degree-8 Taylor polynomial of `e^x` for the rest (`x < ln 10 / 64`),
//! with a relative error below 10⁻¹⁵; the C library's `pow` is within one unit in the
//! last place, and the × 100 and + 0.5 add one rounding each, so the two values differ
//! by far less than 10⁻¹⁴ of the value. Truncating either gives the same integer
//! unless a whole number lies between them; so whenever the estimate is within 10⁻¹² of
//! its value (100 times the largest difference) from a whole number, the price is
//! computed the script's way instead (about one price in 10,000 at the top of the
//! range, far fewer below). The result is therefore always the script's.

use std::f64::consts::LN_10;

/// Table steps per power of ten.
const STEPS: usize = 64;
/// `10^(j/64)` for `j` in `0..=6·64` (`u · 6 < 6`; the last entry is never used).
const ENTRIES: usize = 6 * STEPS + 1;

/// The price table of the generator (3 KiB; see the module docs).
pub(crate) struct Prices {
    powers: Box<[f64; ENTRIES]>,
}

/// `int(10 ** (u * 6.0) * 100.0 + 0.5)`, the script's way (the C library's `pow`).
pub(crate) fn reference_price(u: f64) -> i64 {
    (10f64.powf(u * 6.0) * 100.0 + 0.5) as i64
}

impl Prices {
    /// The table (385 calls of `pow`).
    pub(crate) fn new() -> Prices {
        let mut powers = Box::new([0.0; ENTRIES]);
        for (j, power) in powers.iter_mut().enumerate() {
            // j / 64 is exact
            *power = 10f64.powf(j as f64 / STEPS as f64);
        }
        Prices { powers }
    }

    /// The price of draw `u` in `[0, 1)`: exactly [`reference_price`]`(u)`.
    #[inline]
    pub(crate) fn price(&self, u: f64) -> i64 {
        let y = u * 6.0;
        let j = (y * STEPS as f64) as usize;
        let Some(&power) = self.powers.get(j) else {
            return reference_price(u);
        };
        // exact: j / 64 <= y < (j + 1) / 64, so the difference is a multiple of y's
        // last place and at most 1/64 (Sterbenz for j >= 1; y itself for j = 0)
        let rest = y - j as f64 / STEPS as f64;
        let x = rest * LN_10;
        // e^x for 0 <= x < 0.036: the terms after x^8/8! add less than 10^-18
        let exp_x = 1.0
            + x * (1.0
                + x * (1.0 / 2.0
                    + x * (1.0 / 6.0
                        + x * (1.0 / 24.0
                            + x * (1.0 / 120.0
                                + x * (1.0 / 720.0 + x * (1.0 / 5040.0 + x * (1.0 / 40320.0))))))));
        let estimate = power * exp_x * 100.0 + 0.5;
        let whole = estimate as i64;
        let fraction = estimate - whole as f64;
        let margin = estimate * 1e-12;
        if fraction > margin && fraction < 1.0 - margin {
            whole
        } else {
            reference_price(u)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nexmark::py_random::PyRandom;

    #[test]
    fn prices_are_the_scripts() {
        let prices = Prices::new();
        let mut random = PyRandom::new(5);
        for _ in 0..2_000_000 {
            let u = random.random();
            assert_eq!(prices.price(u), reference_price(u), "u = {u:e}");
        }
        // the ends, and draws whose price is near a half (the fallback)
        for u in [0.0, 1e-300, 0.5, 1.0 - f64::EPSILON / 2.0] {
            assert_eq!(prices.price(u), reference_price(u), "u = {u:e}");
        }
        for cents in [101.0f64, 12_345.0, 99_999_999.0] {
            // u with 10^(6u) · 100 = cents - 0.5, and its neighbours (positive: the bits
            // count up)
            let u = ((cents - 0.5).log10() - 2.0) / 6.0;
            let mut near = u;
            for _ in 0..64 {
                assert_eq!(prices.price(near), reference_price(near), "u = {near:e}");
                near = f64::from_bits(near.to_bits() - 1);
            }
            let mut near = u;
            for _ in 0..64 {
                assert_eq!(prices.price(near), reference_price(near), "u = {near:e}");
                near = f64::from_bits(near.to_bits() + 1);
            }
        }
    }
}
