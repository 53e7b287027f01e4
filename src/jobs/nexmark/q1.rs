//! Nexmark q1, currency conversion: every bid with its price in euros.
//!
//! ```sql
//! SELECT auction, bidder, 0.908 * price as price, dateTime, extra FROM bid
//! ```
//!
//! ```text
//! bids ──map──▶ write_csv
//! ```
//!
//! `0.908 * price` is exact decimal arithmetic in Flink SQL: `DECIMAL(4, 3)` times
//! `BIGINT` (`DECIMAL(19, 0)`) is `DECIMAL(23, 3)`. Here it is [`Euros`]: thousandths
//! held in an `i128` (a `BIGINT` price times 908 always fits); no floating point is
//! involved. Flink's CSV format writes a decimal as Java's
//! `BigDecimal.stripTrailingZeros().toString()`: `100806.16`, `920258`, and, when the
//! integer part ends with zeros, scientific notation (`5.30272E+6`); [`Euros`]'
//! `Display` writes the same text.

use crate::connectors::nexmark::{Bid, CsvLine, CsvRow, IngestTime, Text};
use crate::prelude::*;

use super::changelog::write_rows;
use super::{bids, Io};

/// The output's columns.
pub const HEADER: &[&str] = &["auction", "bidder", "price", "dateTime", "extra"];

/// A `DECIMAL(23, 3)`: an exact amount in thousandths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Euros {
    /// The amount × 1000.
    pub thousandths: i128,
}

impl Euros {
    /// `0.908 * dollars`, exactly.
    pub fn from_dollars(dollars: i64) -> Self {
        Euros {
            thousandths: i128::from(dollars) * 908,
        }
    }
}

/// Java's `BigDecimal.stripTrailingZeros().toString()` (what Flink's CSV format writes).
impl std::fmt::Display for Euros {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.thousandths == 0 {
            return f.write_str("0");
        }
        let sign = if self.thousandths < 0 { "-" } else { "" };
        let mut unscaled = self.thousandths.unsigned_abs();
        let mut scale: i64 = 3;
        while unscaled.is_multiple_of(10) {
            unscaled /= 10;
            scale -= 1;
        }
        let digits = unscaled.to_string();
        let length = digits.len() as i64;
        if scale == 0 {
            write!(f, "{sign}{digits}")
        } else if scale > 0 {
            // 0 < scale <= 3: plain notation (Java's threshold is an exponent of -6)
            if length > scale {
                let point = (length - scale) as usize;
                write!(f, "{sign}{}.{}", &digits[..point], &digits[point..])
            } else {
                let zeros = "0".repeat((scale - length) as usize);
                write!(f, "{sign}0.{zeros}{digits}")
            }
        } else {
            let exponent = length - 1 - scale;
            let (first, rest) = digits.split_at(1);
            let point = if rest.is_empty() { "" } else { "." };
            write!(f, "{sign}{first}{point}{rest}E+{exponent}")
        }
    }
}

/// One result row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Auction id.
    pub auction: i64,
    /// Bidder id.
    pub bidder: i64,
    /// Price in euros.
    pub price: Euros,
    /// Event time, ms since the epoch.
    pub date_time: i64,
    /// Padding.
    pub extra: Text,
    /// When the bid entered its source (for latency; not data).
    pub ingest: IngestTime,
}

impl CsvRow for Row {
    fn write_fields(&self, line: &mut CsvLine) {
        line.integer(self.auction)
            .integer(self.bidder)
            .text(&self.price.to_string())
            .timestamp(self.date_time)
            .text(&self.extra);
    }

    fn ingest(&self) -> Option<std::time::Instant> {
        self.ingest.instant()
    }
}

/// Adds q1 reading `io.input` and writing `io.output` (none: a blackhole) to `env`; an
/// append-only result, so `io.mode` only says whether the rows are written as a changelog
/// of `+I` rows.
pub fn build(env: &Env, io: &Io) {
    let rows = bids(env, io)
        .map(|bid: Bid| Row {
            auction: bid.auction,
            ingest: bid.ingest,
            bidder: bid.bidder,
            price: Euros::from_dollars(bid.price),
            date_time: bid.date_time,
            extra: bid.extra,
        })
        .name("q1_convert");
    write_rows(&rows, io, HEADER);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn euros_print_as_java_big_decimal_stripped() {
        // java: new BigDecimal("0.908").multiply(BigDecimal.valueOf(p)).stripTrailingZeros()
        let cases: &[(i64, &str)] = &[
            (1000, "908"),
            (1, "0.908"),
            (-3, "-2.724"),
            (111_020, "100806.16"),
            (125, "113.5"),
            (5_840_000, "5.30272E+6"),
            (1_250, "1135"),
            (10_000, "9.08E+3"),
            (0, "0"),
            (i64::MAX, "8374821809464136432.756"),
        ];
        for &(dollars, text) in cases {
            assert_eq!(Euros::from_dollars(dollars).to_string(), text, "{dollars}");
        }
        let thousand = Euros {
            thousandths: 1_000_000,
        };
        assert_eq!(thousand.to_string(), "1E+3");
        let small = Euros { thousandths: 5 };
        assert_eq!(small.to_string(), "0.005");
    }
}
