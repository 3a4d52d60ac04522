//! Durations as scenario files write them: `250ms`, `10s`, `1.5s`, `2m`.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration read from and written as text (`250ms`, `10s`, `2m`, `1h`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dur(pub Duration);

impl Dur {
    /// `n` milliseconds.
    pub const fn ms(n: u64) -> Self {
        Self(Duration::from_millis(n))
    }

    /// `n` seconds.
    pub const fn secs(n: u64) -> Self {
        Self(Duration::from_secs(n))
    }
}

/// A text that is not a duration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DurationError {
    /// No unit after the number.
    #[error("`{0}` has no unit: expected a duration like `250ms`, `10s` or `2m`")]
    NoUnit(String),
    /// It does not start with a number.
    #[error("`{0}` does not start with a number: expected a duration like `250ms`, `10s` or `2m`")]
    NotANumber(String),
    /// A unit other than ms, s, m, h.
    #[error("`{text}` has an unknown unit `{unit}`: expected ms, s, m or h (or us, ns)")]
    UnknownUnit {
        /// The text.
        text: String,
        /// The unit it names.
        unit: String,
    },
    /// Longer than anything a run could use.
    #[error("`{0}` is too long")]
    TooLong(String),
}

/// Parses `250ms`, `10s`, `1.5s`, `2m`, `1h` (also `0`, and `us` and
/// `ns` for the exact times the shrinker writes). A whole number is exact.
///
/// # Errors
/// What was expected, in words.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let t = text.trim();
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| DurationError::NoUnit(text.to_owned()))?;
    let (number, unit) = t.split_at(split);
    if !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()) {
        // Exact: no trip through floating point.
        let n: u64 = number
            .parse()
            .map_err(|_| DurationError::TooLong(text.to_owned()))?;
        let nanos_per: u64 = match unit {
            "ns" => 1,
            "us" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" | "min" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => {
                return Err(DurationError::UnknownUnit {
                    text: text.to_owned(),
                    unit: unit.to_owned(),
                })
            }
        };
        let nanos = u128::from(n) * u128::from(nanos_per);
        if nanos > 1_000_000_000 * 1_000_000_000 {
            return Err(DurationError::TooLong(text.to_owned()));
        }
        return Ok(Duration::new(
            (nanos / 1_000_000_000) as u64,
            (nanos % 1_000_000_000) as u32,
        ));
    }
    let value: f64 = number
        .parse()
        .map_err(|_| DurationError::NotANumber(text.to_owned()))?;
    let scale = match unit {
        "ns" => 1e-9,
        "us" => 1e-6,
        "ms" => 0.001,
        "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => {
            return Err(DurationError::UnknownUnit {
                text: text.to_owned(),
                unit: unit.to_owned(),
            })
        }
    };
    let secs = value * scale;
    if !secs.is_finite() || secs > 1e9 {
        return Err(DurationError::TooLong(text.to_owned()));
    }
    Ok(Duration::from_secs_f64(secs))
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if self.0.subsec_nanos() % 1_000_000 != 0 {
            // Not a whole millisecond (a nemesis's draw): exact.
            write!(f, "{}ns", self.0.as_nanos())
        } else if ms % 1000 == 0 && ms > 0 {
            write!(f, "{}s", ms / 1000)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration string like \"250ms\", \"10s\" or \"2m\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Dur, E> {
                parse(v).map(Dur).map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_units_scenarios_use() {
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_what_is_not_a_duration_with_a_reason() {
        assert!(parse("10").unwrap_err().to_string().contains("no unit"));
        assert!(parse("ten s").unwrap_err().to_string().contains("number"));
        assert!(parse("10 parsecs")
            .unwrap_err()
            .to_string()
            .contains("unknown unit"));
        assert!(parse("1e400s").is_err());
        assert!(parse("").is_err());
    }

    #[test]
    fn displays_what_it_parses() {
        for d in [
            Dur::ms(250),
            Dur::secs(10),
            Dur::ms(1500),
            Dur(Duration::new(2, 345_678_901)),
            Dur(Duration::from_nanos(1)),
        ] {
            assert_eq!(parse(&d.to_string()), Ok(d.0));
        }
        assert_eq!(
            Dur(Duration::new(2, 345_678_901)).to_string(),
            "2345678901ns"
        );
        assert_eq!(parse("1500us"), Ok(Duration::from_micros(1500)));
    }
}
