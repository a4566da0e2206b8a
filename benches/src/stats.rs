//! Latency histograms, throughput figures, the consumer-side verifier and
//! the report they make.

use std::collections::HashMap;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::message::Decoded;

/// A latency histogram in microseconds, 1 µs to 1 hour, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3)
        .unwrap_or_else(|_| unreachable!("constant bounds are valid"))
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Latency {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// 99.99th percentile.
    pub p9999_ms: f64,
    /// Largest sample.
    pub max_ms: f64,
    /// Mean.
    pub mean_ms: f64,
    /// (percentile, ms) points for plotting the distribution.
    pub distribution: Vec<(f64, f64)>,
}

impl Latency {
    /// The figures of a histogram of microseconds.
    pub fn of(h: &Histogram<u64>) -> Latency {
        let ms = |us: u64| us as f64 / 1000.0;
        let distribution = [
            0.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 99.995, 99.999, 100.0,
        ]
        .iter()
        .map(|q| (*q, ms(h.value_at_quantile(q / 100.0))))
        .collect();
        Latency {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.5)),
            p90_ms: ms(h.value_at_quantile(0.9)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            p9999_ms: ms(h.value_at_quantile(0.9999)),
            max_ms: ms(h.max()),
            mean_ms: h.mean() / 1000.0,
            distribution,
        }
    }

    /// One line: `p50 … max`.
    pub fn line(&self) -> String {
        format!(
            "p50 {:.3} ms  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  p99.99 {:.3}  max {:.3}  ({} samples)",
            self.p50_ms, self.p90_ms, self.p99_ms, self.p999_ms, self.p9999_ms, self.max_ms, self.count
        )
    }
}

/// Messages and bytes over a time span.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Throughput {
    /// Messages.
    pub messages: u64,
    /// Payload bytes (message values).
    pub bytes: u64,
    /// Seconds measured.
    pub seconds: f64,
    /// Messages per second.
    pub messages_per_sec: f64,
    /// Megabytes (10^6) per second.
    pub mb_per_sec: f64,
}

impl Throughput {
    /// The rates of `messages` and `bytes` over `seconds`.
    pub fn of(messages: u64, bytes: u64, seconds: f64) -> Throughput {
        let s = seconds.max(1e-9);
        Throughput {
            messages,
            bytes,
            seconds,
            messages_per_sec: messages as f64 / s,
            mb_per_sec: bytes as f64 / s / 1e6,
        }
    }

    /// One line: msgs/s and MB/s.
    pub fn line(&self) -> String {
        format!(
            "{:.0} msgs/s  {:.1} MB/s  ({} msgs, {:.1} MB in {:.2} s)",
            self.messages_per_sec,
            self.mb_per_sec,
            self.messages,
            self.bytes as f64 / 1e6,
            self.seconds
        )
    }
}

/// Checks what one consumer receives: every message once, in order per
/// (producer, partition), with the bytes that were sent.
#[derive(Debug, Default)]
pub struct Verifier {
    /// Bit per sequence number, per producer.
    seen: HashMap<u32, Vec<u64>>,
    last: HashMap<(u32, u32), u64>,
    /// Messages received.
    pub received: u64,
    /// Everything found wrong (the first 20 are kept).
    pub errors: Vec<String>,
    /// Count of everything found wrong.
    pub error_count: u64,
}

impl Verifier {
    fn error(&mut self, e: String) {
        self.error_count += 1;
        if self.errors.len() < 20 {
            self.errors.push(e);
        }
    }

    /// Records a message that arrived on `partition`, or what was wrong with it.
    pub fn record(&mut self, partition: u32, message: Result<Decoded, String>) {
        self.received += 1;
        let m = match message {
            Ok(m) => m,
            Err(e) => return self.error(e),
        };
        let bits = self.seen.entry(m.producer).or_default();
        let (word, bit) = ((m.seq / 64) as usize, m.seq % 64);
        if bits.len() <= word {
            bits.resize(word + 1, 0);
        }
        if bits[word] & (1 << bit) != 0 {
            return self.error(format!(
                "producer {} message {} arrived twice",
                m.producer, m.seq
            ));
        }
        bits[word] |= 1 << bit;
        if let Some(prev) = self.last.insert((m.producer, partition), m.seq) {
            if m.seq < prev {
                self.error(format!(
                    "producer {} partition {partition}: message {} after {prev}",
                    m.producer, m.seq
                ));
            }
        }
    }

    /// Reports every message of `sent[p]` (per producer) that never came.
    pub fn check_complete(&mut self, sent: &[u64]) {
        for (p, &count) in sent.iter().enumerate() {
            let bits = self.seen.get(&(p as u32)).cloned().unwrap_or_default();
            let got: u64 = bits.iter().map(|w| u64::from(w.count_ones())).sum();
            if got != count {
                let missing = (0..count).find(|s| {
                    bits.get((s / 64) as usize)
                        .is_none_or(|w| w & (1 << (s % 64)) == 0)
                });
                self.error(format!(
                    "producer {p}: {got} of {count} messages arrived (first missing: {missing:?})"
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(producer: u32, seq: u64) -> Result<Decoded, String> {
        Ok(Decoded {
            producer,
            seq,
            sent_ns: 0,
        })
    }

    #[test]
    fn verifier_finds_duplicates_gaps_and_disorder() {
        let mut v = Verifier::default();
        v.record(0, m(0, 0));
        v.record(0, m(0, 2));
        v.record(1, m(0, 1));
        v.check_complete(&[3]);
        assert_eq!(v.error_count, 0, "{:?}", v.errors);
        v.record(0, m(0, 2));
        v.record(0, m(0, 1));
        v.check_complete(&[4]);
        assert_eq!(v.error_count, 3, "{:?}", v.errors);
    }

    #[test]
    fn percentiles_in_ms() {
        let mut h = histogram();
        for us in 1..=1000 {
            h.record(us).unwrap();
        }
        let l = Latency::of(&h);
        assert!((l.p50_ms - 0.5).abs() < 0.01);
        assert!((l.max_ms - 1.0).abs() < 0.01);
        let t = Throughput::of(1000, 2_000_000, 2.0);
        assert_eq!((t.messages_per_sec, t.mb_per_sec), (500.0, 1.0));
    }
}
