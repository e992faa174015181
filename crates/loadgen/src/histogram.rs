//! The latency histogram, and its exact wire form for the processes of one run: each
//! recorded bucket as `[value, count]` (re-recording a bucket's value lands in the same
//! bucket, so a merged histogram equals the one a single process would have recorded).

use hdrhistogram::Histogram;

/// Latencies from 1 µs to 60 s at 3 significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    #[expect(
        clippy::expect_used,
        reason = "constant, valid bounds: 1 < 60e6 and 3 significant digits"
    )]
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// `#[serde(with = "crate::histogram::counts")]` for a [`latency_histogram`].
pub mod counts {
    use hdrhistogram::Histogram;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Writes the recorded buckets as `[[value, count], …]`.
    pub fn serialize<S: Serializer>(h: &Histogram<u64>, s: S) -> Result<S::Ok, S::Error> {
        h.iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value()))
            .collect::<Vec<_>>()
            .serialize(s)
    }

    /// Reads `[[value, count], …]` into a [`super::latency_histogram`].
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Histogram<u64>, D::Error> {
        let buckets = Vec::<(u64, u64)>::deserialize(d)?;
        let mut h = super::latency_histogram();
        for (value, count) in buckets {
            h.record_n(value, count).map_err(serde::de::Error::custom)?;
        }
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use hdrhistogram::Histogram;
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize)]
    struct Wrapped(#[serde(with = "super::counts")] Histogram<u64>);

    #[test]
    fn the_wire_form_is_exact() -> anyhow::Result<()> {
        let mut h = super::latency_histogram();
        for v in [1, 7, 999, 1_000, 1_001, 123_456, 59_000_000] {
            h.record_n(v, v % 5 + 1)?;
        }
        let text = serde_json::to_string(&Wrapped(h.clone()))?;
        let back: Wrapped = serde_json::from_str(&text)?;
        assert_eq!(back.0.len(), h.len());
        assert_eq!(back.0.max(), h.max());
        assert_eq!(back.0.min(), h.min());
        for q in [0.0, 0.5, 0.9, 0.99, 1.0] {
            assert_eq!(back.0.value_at_quantile(q), h.value_at_quantile(q));
        }
        assert_eq!(back.0, h);
        Ok(())
    }
}
