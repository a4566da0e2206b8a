//! Retention: which whole segments have expired, by age or by the log's size.
//! Pure: the log deletes what this decides. The active (last) segment is
//! never chosen, so a log always keeps somewhere to append.

/// What retention needs to know of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentStat {
    /// Bytes in the segment.
    pub size_bytes: u64,
    /// Largest record timestamp in it (ms), `i64::MIN` if empty.
    pub max_timestamp: i64,
}

/// Retention settings of a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Retention {
    /// Delete a segment once its newest record is older than this (ms).
    pub retention_ms: Option<u64>,
    /// Delete the oldest segments while the log is larger than this.
    pub retention_bytes: Option<u64>,
}

/// How many of the oldest `segments` (oldest first, active last) to delete
/// at `now_ms`. Kafka's rules: a segment expires by time when
/// `now - max_timestamp > retention_ms`; by size while deleting it still
/// leaves at least `retention_bytes`. Both delete from the oldest and stop at
/// the first segment that must stay.
pub fn expired(segments: &[SegmentStat], now_ms: i64, retention: Retention) -> usize {
    let Some((_active, deletable)) = segments.split_last() else {
        return 0;
    };
    let by_time = retention.retention_ms.map_or(0, |ms| {
        deletable
            .iter()
            .take_while(|s| {
                s.max_timestamp != i64::MIN
                    && i128::from(now_ms) - i128::from(s.max_timestamp) > i128::from(ms)
            })
            .count()
    });
    let by_size = retention.retention_bytes.map_or(0, |limit| {
        let total: u64 = segments.iter().map(|s| s.size_bytes).sum();
        let mut excess = total.saturating_sub(limit);
        deletable
            .iter()
            .take_while(|s| {
                let fits = s.size_bytes <= excess;
                if fits {
                    excess -= s.size_bytes;
                }
                fits
            })
            .count()
    });
    by_time.max(by_size)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segs(v: &[(u64, i64)]) -> Vec<SegmentStat> {
        v.iter()
            .map(|&(size_bytes, max_timestamp)| SegmentStat {
                size_bytes,
                max_timestamp,
            })
            .collect()
    }

    #[test]
    fn time_retention_deletes_the_old_prefix_but_never_the_active_segment() {
        let s = segs(&[(10, 100), (10, 200), (10, 300), (10, 50)]);
        let r = Retention {
            retention_ms: Some(1_000),
            retention_bytes: None,
        };
        assert_eq!(expired(&s, 1_150, r), 1);
        assert_eq!(expired(&s, 1_250, r), 2);
        // The last segment is active even though it is the oldest by time.
        assert_eq!(expired(&s, 1_000_000, r), 3);
        assert_eq!(expired(&s[..1], 1_000_000, r), 0);
        assert_eq!(expired(&[], 0, r), 0);
    }

    #[test]
    fn size_retention_keeps_at_least_the_limit() {
        let s = segs(&[(100, 0), (100, 0), (100, 0), (50, 0)]);
        let r = |b| Retention {
            retention_ms: None,
            retention_bytes: Some(b),
        };
        assert_eq!(expired(&s, 0, r(350)), 0);
        assert_eq!(expired(&s, 0, r(250)), 1);
        assert_eq!(expired(&s, 0, r(150)), 2);
        assert_eq!(expired(&s, 0, r(0)), 3);
    }
}
