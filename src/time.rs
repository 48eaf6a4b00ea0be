//! Wall-clock helpers. Deadlines that several hosts must agree on (leases, retries, run order)
//! use Redis's clock inside the scripts instead; these are for timestamps a person reads and for
//! this process's own files.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch; 0 if the clock is set before 1970.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Seconds since the Unix epoch; 0 if the clock is set before 1970.
pub fn now_secs() -> u64 {
    now_ms() / 1000
}

/// `YYYYMMDD-HHMMSS` in UTC, without pulling in a date crate for one format.
pub fn format_utc(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if mo <= 2 { y + 1 } else { y };
    format!("{y:04}{mo:02}{d:02}-{h:02}{m:02}{s:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_format_matches_known_dates() {
        assert_eq!(format_utc(0), "19700101-000000");
        assert_eq!(format_utc(1_795_500_000), "20261124-060000");
        assert_eq!(format_utc(951_782_400), "20000229-000000");
    }
}
